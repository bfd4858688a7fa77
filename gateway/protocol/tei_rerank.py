"""Hugging Face text-embeddings-inference (TEI) rerank wire format, served on ``POST /rerank``.

Spec: https://huggingface.github.io/text-embeddings-inference/#/Text%20Embeddings%20Inference/rerank
Request ``{query, texts, raw_scores, return_text, truncate, truncation_direction}``; response a bare
array ``[{index, score, text?}]`` sorted by score, best first; errors ``{error, error_type}``.
A body with ``texts`` and no ``documents`` is TEI's; anything else on ``/rerank`` is Cohere/Jina.
TEI serves one model, so ``model`` is an optional extension here.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.errors import GatewayError, NotReady, Overloaded
from gateway.inputs import Overflow
from gateway.protocol.nulls import NullAsDefault


class TeiRerankRequest(NullAsDefault, kw_only=True):
    """TEI ``POST /rerank`` body."""

    query: str
    texts: list[str]
    raw_scores: bool | None = False  # score is the raw logit (cosine for bi-encoders) instead of [0, 1]
    return_text: bool | None = False
    truncate: bool | None = None  # None: the model's truncation policy; False: too long is a 400
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = "Right"
    model: str | None = None


class Rank(msgspec.Struct):
    index: int
    score: float
    text: str | msgspec.UnsetType = msgspec.UNSET  # left out unless return_text


def is_tei_body(body: bytes) -> bool:
    """Whether a JSON body is TEI-shaped: it has ``texts`` and no ``documents`` (False if not an object)."""
    try:
        fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.MsgspecError:
        return False
    return "texts" in fields and "documents" not in fields


def overflow_policy(request: TeiRerankRequest, model_truncates: bool) -> Overflow:
    """TEI truncates (from the side ``truncation_direction`` names) or rejects long texts; it never chunks."""
    truncate = model_truncates if request.truncate is None else request.truncate
    if not truncate:
        return "reject"
    return "truncate_left" if request.truncation_direction.lower() == "left" else "truncate"


def to_tei_response(ranked: list[tuple[int, float]], texts: list[str], return_text: bool) -> bytes:
    """Encode ``(index, score)`` pairs, best first, as TEI's array of ranks."""
    ranks = [Rank(index, score, texts[index] if return_text else msgspec.UNSET) for index, score in ranked]
    return msgspec.json.encode(ranks)


def error_body(error: GatewayError) -> dict:
    """TEI's ``{"error": ..., "error_type": ...}``; the status stays ours (TEI answers 413 for validation)."""
    if isinstance(error, Overloaded):
        error_type = "Overloaded"
    elif isinstance(error, NotReady):
        error_type = "Unhealthy"
    elif error.status >= 500:
        error_type = "Backend"
    else:
        error_type = "Validation"
    return {"error": error.message, "error_type": error_type}
