"""vLLM's score API: ``POST /score`` and ``/v1/score``.

Spec: vLLM ``vllm/entrypoints/pooling/score/protocol.py`` (``ScoreRequest``, ``ScoreResponse``) and its
pairing rule (``_validate_score_input_lens``): ``text_1`` and ``text_2`` are each a string or a list;
one ``text_1`` is paired with every ``text_2`` (1:1, 1:N), else both lists must be as long (N:N, zipped).
Response ``{"id": "score-...", "object": "list", "created", "model", "data": [{"index", "object":
"score", "score"}], "usage"}``, one score per pair in pair order. Errors: ``gateway.protocol.vllm``.
"""

from __future__ import annotations

import time

import msgspec

from gateway.errors import InvalidRequest
from gateway.protocol.nulls import NullAsDefault
from gateway.protocol.vllm import Usage, response_id, usage


class ScoreRequest(NullAsDefault, kw_only=True):
    """``POST /score`` body (``truncate_prompt_tokens``, ``user`` and ``priority`` are accepted; only
    ``truncate_prompt_tokens`` has an effect: -1 or None truncates to the model's limit per its policy)."""

    text_1: str | list[str]
    text_2: str | list[str]
    model: str | None = None
    truncate_prompt_tokens: int | None = None
    user: str | None = None
    priority: int | None = 0


class ScoreData(msgspec.Struct):
    index: int
    object: str
    score: float


class ScoreResponse(msgspec.Struct):
    id: str
    object: str
    created: int
    model: str
    data: list[ScoreData]
    usage: Usage


def pairs(request: ScoreRequest) -> list[tuple[str, str]]:
    """The ``(text_1, text_2)`` pairs to score, by vLLM's rule (see the module docstring).

    Raises:
        InvalidRequest: an empty side, or N:M lists with N > 1 and N != M (vLLM's messages).
    """
    first = [request.text_1] if isinstance(request.text_1, str) else list(request.text_1)
    second = [request.text_2] if isinstance(request.text_2, str) else list(request.text_2)
    if len(first) > 1 and len(first) != len(second):
        raise InvalidRequest(f"Input lengths must be either 1:1, 1:N or N:N (got {len(first)}:{len(second)})",
                             param="text_2")
    if not first:
        raise InvalidRequest("At least one text element must be given", param="text_1")
    if not second:
        raise InvalidRequest("At least one text_pair element must be given", param="text_2")
    if len(first) == 1:
        first = first * len(second)
    return list(zip(first, second, strict=True))


def to_response(scores: list[float], model: str, tokens: int) -> bytes:
    """One score per pair -> the encoded ``ScoreResponse``."""
    data = [ScoreData(i, "score", float(score)) for i, score in enumerate(scores)]
    return msgspec.json.encode(ScoreResponse(response_id("score"), "list", int(time.time()), model, data,
                                             usage(tokens)))
