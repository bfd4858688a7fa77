"""vLLM's ``POST /pooling`` wire format (vLLM ``entrypoints/pooling/pooling/protocol.py``:
``PoolingCompletionRequest`` / ``PoolingResponse``), for what this server pools per token.

``task: "token_embed"`` answers one vector per token the model keeps (a multi-vector / ColBERT model:
``data[i].data`` is ``[[float, ...] per token]``); ``task: "embed"`` answers one pooled vector per input
(a dense embedder: ``data[i].data`` is ``[float, ...]``). Without ``task``, the model's own output is
used. Other tasks, and ``encoding_format`` other than ``float``, get a 400 naming the field. Errors are
OpenAI's ``{"error": {"message", "type", "param", "code"}}``, as vLLM's.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

import msgspec
import numpy as np

from gateway.errors import InvalidRequest
from gateway.protocol.nulls import NullAsDefault

PoolingTask = Literal["token_embed", "embed", "classify", "score", "token_classify", "plugin"]


class PoolingRequest(NullAsDefault, kw_only=True):
    """``POST /pooling`` body (vLLM's fields that apply; ``input`` texts only)."""

    input: str | list[str]
    model: str | None = None
    task: PoolingTask | None = None
    encoding_format: Literal["float", "base64"] | None = "float"
    truncate_prompt_tokens: int | None = None
    user: str | None = None


class PoolingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0


class PoolingData(msgspec.Struct):
    index: int
    data: list
    object: str = "pooling"


class PoolingResponse(msgspec.Struct):
    id: str
    created: int
    model: str
    data: list[PoolingData]
    usage: PoolingUsage
    object: str = "list"


def texts_of(request: PoolingRequest) -> list[str]:
    """``input`` as a list of texts."""
    return [request.input] if isinstance(request.input, str) else list(request.input)


def check_request(request: PoolingRequest, task: str) -> None:
    """Raises InvalidRequest naming the field for what this server does not pool: a ``task`` other than
    ``token_embed`` / ``embed``, base64 output, or ``truncate_prompt_tokens`` (vLLM's left truncation)."""
    if task not in ("token_embed", "embed"):
        raise InvalidRequest(f"'task' {task!r} is not served by /pooling here; use 'token_embed' "
                             "(multi-vector models) or 'embed' (dense models)", param="task")
    if request.encoding_format not in (None, "float"):
        raise InvalidRequest("'encoding_format' must be 'float' on /pooling", param="encoding_format")
    if request.truncate_prompt_tokens is not None:
        raise InvalidRequest("'truncate_prompt_tokens' is not supported; inputs are truncated at the model's "
                             "limit", param="truncate_prompt_tokens")


def to_response(rows: list[np.ndarray], model: str, tokens: int) -> bytes:
    """One ``(tokens, dim)`` or ``(dim,)`` float32 array per input -> the response JSON bytes."""
    data = [PoolingData(i, row.tolist()) for i, row in enumerate(rows)]
    return msgspec.json.encode(PoolingResponse(f"pool-{uuid.uuid4().hex}", int(time.time()), model, data,
                                               PoolingUsage(tokens, tokens)))
