"""Ollama's embedding and rerank wire format: ``/api/embed``, ``/api/embeddings``, ``/api/rerank``, errors.

Spec: https://github.com/ollama/ollama/blob/main/docs/api.md (the embed handlers of Ollama's
``server/routes.go``, v0.30, are the reference for defaults and messages); ``/api/rerank`` follows the
shape of Ollama's open rerank proposal (https://github.com/ollama/ollama/pull/7219, issue #3368).

- ``/api/embed``: ``{model, input (string or list), truncate, dimensions, keep_alive, options}`` ->
  ``{model, embeddings, total_duration, load_duration, prompt_eval_count}``; durations in nanoseconds,
  vectors always L2-normalized, ``dimensions`` in ``1..dim-1`` truncates and re-normalizes (0 or at least
  ``dim``: the full vector, as Ollama). An empty ``input`` answers no embeddings (Ollama's "load" call).
  ``options.num_ctx`` caps the input length in tokens; other options are accepted and ignored.
  ``keep_alive`` (``"5m"``, seconds, ``0``: unload once answered, negative: forever) sets how long the
  model stays loaded after this request (``gateway.serving.lifecycle``); absent: the model's own.
- ``/api/embeddings`` (legacy): ``{model, prompt}`` -> ``{embedding}``, without the final normalization.
- ``/api/rerank``: ``{model, query, documents, top_n, return_documents}`` -> ``{model, results: [{index,
  relevance_score, document}]}``, best first; ``document`` (the text) unless ``return_documents`` is false.
- Errors: ``{"error": "..."}``; 404 ``model 'x' not found``; a too-long input with ``truncate: false`` is
  a 400 ``the input length exceeds the context length``.

Model names follow Ollama's ``model:tag``: a served name without a tag also answers to ``<name>:latest``
(``strip_latest``), which is how ``/api/tags`` lists it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from gateway.errors import GatewayError, InvalidRequest
from gateway.protocol.nulls import NullAsDefault
from gateway.protocol.openai import float_rows

KeepAlive = str | int | float  # "5m", seconds, 0 (unload when done) or negative (forever)
TOO_LONG = "the input length exceeds the context length"  # Ollama's message for truncate: false


class EmbedRequest(NullAsDefault, kw_only=True):
    """``POST /api/embed`` body."""

    model: str | None = ""
    input: str | list[str] | None = None
    truncate: bool | None = None  # None: the model's policy (truncate unless configured to reject)
    dimensions: int | None = None
    keep_alive: KeepAlive | None = None
    options: dict[str, Any] | None = None


class EmbeddingsRequest(NullAsDefault, kw_only=True):
    """``POST /api/embeddings`` (legacy) body."""

    model: str | None = ""
    prompt: str | None = None
    keep_alive: KeepAlive | None = None
    options: dict[str, Any] | None = None


class RerankRequest(NullAsDefault, kw_only=True):
    """``POST /api/rerank`` body (Ollama's rerank proposal)."""

    query: str
    documents: list[str]
    model: str | None = ""
    top_n: int | None = None
    return_documents: bool | None = True
    keep_alive: KeepAlive | None = None
    options: dict[str, Any] | None = None


class EmbedResponse(msgspec.Struct):
    model: str
    embeddings: list[msgspec.Raw]
    total_duration: int  # ns
    load_duration: int  # ns
    prompt_eval_count: int


class EmbeddingsResponse(msgspec.Struct):
    embedding: list[float]


class RerankResult(msgspec.Struct):
    index: int
    relevance_score: float
    document: str | msgspec.UnsetType = msgspec.UNSET


class RerankResponse(msgspec.Struct):
    model: str
    results: list[RerankResult]


def strip_latest(name: str) -> str | None:
    """``x:latest`` -> ``x`` (Ollama's default tag), None for a name without that tag."""
    return name.removesuffix(":latest") if name.endswith(":latest") else None


def inputs(value: str | list[str] | None) -> list[str]:
    """``input`` as a list of texts; an empty string or list means none (Ollama loads the model)."""
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str) else list(value)


def num_ctx(options: dict[str, Any] | None) -> int | None:
    """``options.num_ctx``: a per-request cap on input length in tokens.

    Raises:
        InvalidRequest: it is not a positive integer.
    """
    value = (options or {}).get("num_ctx")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"option 'num_ctx' must be a positive integer, got {value!r}", param="options")
    return value


def dimensions(value: int | None, native: int) -> int | None:
    """Ollama's ``dimensions``: a size in ``1..native-1`` truncates, 0 or ``native`` and above do not.

    Raises:
        InvalidRequest: a negative size.
    """
    if value is not None and value < 0:
        raise InvalidRequest(f"'dimensions' must not be negative, got {value}", param="dimensions")
    return value if value and value < native else None


def to_embed_response(vectors: np.ndarray, model: str, tokens: int, total_ns: int, load_ns: int) -> bytes:
    """Encode ``/api/embed``'s answer (``vectors``: ``(n, dim)`` float32 in input order)."""
    rows = float_rows(vectors) if len(vectors) else []
    return msgspec.json.encode(EmbedResponse(model, rows, total_ns, load_ns, tokens))


def to_rerank_response(ranked: list[tuple[int, float]], documents: list[str], model: str,
                       return_documents: bool) -> bytes:
    """Encode ``(index, relevance_score)`` pairs, best first, as ``/api/rerank``'s answer."""
    results = [RerankResult(index, score, documents[index] if return_documents else msgspec.UNSET)
               for index, score in ranked]
    return msgspec.json.encode(RerankResponse(model, results))


def error_body(error: GatewayError) -> dict:
    """Ollama's ``{"error": "..."}``."""
    return {"error": error.message}
