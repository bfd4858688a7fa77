"""vLLM's classification API: ``POST /classify`` (also ``/v1/classify``).

Spec: vLLM ``vllm/entrypoints/pooling/classify/protocol.py`` (``ClassificationRequest``,
``ClassificationResponse``). Request ``{"model", "input": str | [str], "truncate_prompt_tokens"?}``;
response ``{"id": "classify-...", "object": "list", "created", "model", "data": [{"index", "label",
"probs", "num_classes"}], "usage"}``: ``probs`` are the softmax of the class logits (the sigmoid of a
single logit), ``label`` the name of the most probable class. Errors: ``gateway.protocol.vllm.error_body``.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np

from gateway.errors import InvalidRequest
from gateway.protocol.nulls import NullAsDefault
from gateway.protocol.vllm import Usage, response_id, usage


class ClassifyRequest(NullAsDefault, kw_only=True):
    """``POST /classify`` body (``user`` and ``priority`` are accepted and ignored)."""

    input: str | list[str]
    model: str | None = None
    truncate_prompt_tokens: int | None = None  # -1: the model's limit; k > 0: keep k tokens (the last k)
    user: str | None = None
    priority: int | None = 0


class ClassificationData(msgspec.Struct):
    index: int
    label: str | None
    probs: list[float]
    num_classes: int


class ClassificationResponse(msgspec.Struct):
    id: str
    object: str
    created: int
    model: str
    data: list[ClassificationData]
    usage: Usage


def inputs(request: ClassifyRequest) -> list[str]:
    """The texts to classify: ``input`` as a list."""
    return [request.input] if isinstance(request.input, str) else list(request.input)


def token_limit(request: ClassifyRequest, model_limit: int) -> int | None:
    """The per-request token limit ``truncate_prompt_tokens`` asks for (None: the model's policy).

    Raises:
        InvalidRequest: 0, below -1, or above the model's limit (as vLLM refuses it).
    """
    value = request.truncate_prompt_tokens
    if value is None:
        return None
    if value == -1:
        return model_limit
    if not 1 <= value <= model_limit:
        raise InvalidRequest(f"'truncate_prompt_tokens' must be -1 or between 1 and the model's limit of "
                             f"{model_limit}, got {value}", param="truncate_prompt_tokens")
    return value


def to_response(probabilities: np.ndarray, labels: tuple[str, ...], model: str, tokens: int) -> bytes:
    """``(n, labels)`` probabilities -> the encoded ``ClassificationResponse``."""
    best = probabilities.argmax(axis=1)
    data = [ClassificationData(i, labels[int(best[i])], row.astype(float).tolist(), len(labels))
            for i, row in enumerate(probabilities)]
    response = ClassificationResponse(response_id("classify"), "list", int(time.time()), model, data,
                                      usage(tokens))
    return msgspec.json.encode(response)
