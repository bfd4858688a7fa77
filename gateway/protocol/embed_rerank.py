"""embed-rerank 1.5.1's own API (PyPI ``embed-rerank``, ``app/models/requests.py`` and ``responses.py``):
``POST /api/v1/embed/``, ``POST /api/v1/rerank/`` (and ``/batch``), its OpenAI-style rerank on
``/v1/openai/rerank`` and ``/v1/rerank_openai``, and its error bodies.

Limits as its pydantic models declare them: 1-100 texts (``batch_size`` 1-128, ``max_tokens_override``
1-8192), a query of 1-2048 characters, 1-1000 passages of at most 4096 characters, ``top_k`` 1-100 (cut
to the passage count), at most 10 requests per batch. A body that breaks them is a 422 in FastAPI's
``{"detail": [...]}`` shape; other errors are embed-rerank's ``{"error", "detail", "status_code"}``.
``model`` is an optional extension of every body (embed-rerank serves one model).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from gateway.errors import GatewayError, InvalidRequest
from gateway.protocol.fastapi_errors import ValidationFailed, validation_detail
from gateway.protocol.nulls import NullAsDefault

MAX_TEXTS, MAX_BATCH_SIZE, MAX_TOKENS_OVERRIDE, MAX_TEXT_CHARS = 100, 128, 8192, 8192
MAX_QUERY_CHARS, MAX_PASSAGES, MAX_PASSAGE_CHARS, MAX_TOP_K, MAX_BATCH_REQUESTS = 2048, 1000, 4096, 100, 10
DOCUMENT_TEXT_KEYS = ("text", "content", "body", "value")  # embed-rerank's order for document objects

Strategy = Literal["smart_truncate", "truncate", "extract", "error"]


class EmbedRequest(NullAsDefault, kw_only=True):
    """``POST /api/v1/embed/`` body."""

    texts: list[str]
    batch_size: int | None = 32  # accepted and echoed; the server batches across requests itself
    normalize: bool | None = True
    auto_truncate: bool | None = True
    truncation_strategy: Strategy | None = "smart_truncate"
    max_tokens_override: int | None = None
    return_processing_info: bool | None = False
    model: str | None = None


class RerankRequest(NullAsDefault, kw_only=True):
    """``POST /api/v1/rerank/`` body; ``documents`` (strings or ``{text}`` objects) and ``top_n`` are its
    aliases of ``passages`` and ``top_k``."""

    query: str
    passages: list[str] | None = None
    documents: list[str | dict] | None = None
    top_k: int | None = None
    top_n: int | None = None
    return_documents: bool | None = True
    model: str | None = None


class OpenAIRerankRequest(NullAsDefault, kw_only=True):
    """``POST /v1/openai/rerank`` (and ``/v1/rerank_openai``) body."""

    query: str
    documents: list[str | dict]
    top_n: int | None = None
    return_documents: bool | None = False
    model: str | None = None


def check_embed(data: EmbedRequest) -> None:
    """embed-rerank's field validators.

    Raises:
        ValidationFailed: 0 or more than 100 texts, a blank text, a text over 8192 characters with
            ``auto_truncate: false``, ``batch_size`` or ``max_tokens_override`` out of range (422).
    """
    _check_count(data.texts, MAX_TEXTS, "texts")
    for i, text in enumerate(data.texts):
        if not text.strip():
            raise ValidationFailed(f"Value error, Text at index {i} cannot be empty or whitespace only",
                                   ["body", "texts"])
        if not data.auto_truncate and len(text) > MAX_TEXT_CHARS:
            raise ValidationFailed(f"Value error, Text at index {i} too long: {len(text)} > {MAX_TEXT_CHARS} "
                                   "characters", ["body", "texts"])
    _check_range(data.batch_size, 1, MAX_BATCH_SIZE, "batch_size")
    if data.max_tokens_override is not None:
        _check_range(data.max_tokens_override, 1, MAX_TOKENS_OVERRIDE, "max_tokens_override")


def truncates(data: EmbedRequest) -> bool:
    """Whether long texts are cut (every strategy but ``error``, unless ``auto_truncate`` is off)."""
    return bool(data.auto_truncate) and data.truncation_strategy != "error"


def rerank_inputs(data: RerankRequest) -> tuple[list[str], int]:
    """The passages (``documents`` mapped as embed-rerank maps them) and ``top_k`` (default 10, cut to the
    passage count).

    Raises:
        ValidationFailed: no passages, more than 1000, a blank or over-long passage or query, a document
            object without text, ``top_k`` outside 1-100 (422).
    """
    passages = data.passages if data.passages is not None else (
        document_texts(data.documents) if data.documents is not None else None)
    if passages is None:
        raise ValidationFailed("Field required", ["body", "passages"], kind="missing")
    if not data.query.strip() or len(data.query) > MAX_QUERY_CHARS:
        raise ValidationFailed(f"Value error, Query must hold 1 to {MAX_QUERY_CHARS} characters and not be "
                               "whitespace only", ["body", "query"])
    _check_count(passages, MAX_PASSAGES, "passages")
    for i, passage in enumerate(passages):
        if not passage.strip():
            raise ValidationFailed(f"Value error, Passage at index {i} cannot be empty or whitespace only",
                                   ["body", "passages"])
        if len(passage) > MAX_PASSAGE_CHARS:
            raise ValidationFailed(f"Value error, Passage at index {i} too long: {len(passage)} > "
                                   f"{MAX_PASSAGE_CHARS} characters", ["body", "passages"])
    top_k = data.top_k if data.top_k is not None else (data.top_n if data.top_n is not None else 10)
    _check_range(top_k, 1, MAX_TOP_K, "top_k")
    return passages, min(top_k, len(passages))


def document_texts(documents: list[str | dict]) -> list[str]:
    """Documents as texts: a string, or an object's ``text`` / ``content`` / ``body`` / ``value``.

    Raises:
        ValidationFailed: an object with none of those (422).
    """
    texts = []
    for i, item in enumerate(documents):
        if isinstance(item, dict):
            text = next((item[key] for key in DOCUMENT_TEXT_KEYS if item.get(key)), None)
            if not isinstance(text, str):
                raise ValidationFailed(f"Document at index {i} must be a string or an object with a 'text' "
                                       "field", ["body", "documents", i])
            item = text
        texts.append(item)
    return texts


def check_batch(requests: list) -> None:
    """Raises InvalidRequest (400, as embed-rerank) for an empty batch or more than 10 requests."""
    if not requests or len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequest("Invalid batch input: Batch size too large. Maximum 10 requests per batch."
                             if requests else "Invalid batch input: the batch holds no request.")


def _check_count(items: list, limit: int, field: str) -> None:
    if not items:
        raise ValidationFailed("List should have at least 1 item after validation, not 0", ["body", field],
                               kind="too_short")
    if len(items) > limit:
        raise ValidationFailed(f"List should have at most {limit} items after validation, not {len(items)}",
                               ["body", field], kind="too_long")


def _check_range(value: int, low: int, high: int, field: str) -> None:
    if value < low:
        raise ValidationFailed(f"Input should be greater than or equal to {low}", ["body", field],
                               kind="greater_than_equal")
    if value > high:
        raise ValidationFailed(f"Input should be less than or equal to {high}", ["body", field],
                               kind="less_than_equal")


def embed_response(vectors: list[list[float]], texts: list[str], data: EmbedRequest, *, dim: int, model: str,
                   backend: str, device: str, tokens: int, seconds: float) -> dict:
    """embed-rerank's ``EmbedResponse`` (``embeddings`` with ``index`` and the text's first 100 characters,
    the legacy ``vectors``, ``usage``...). ``total_tokens`` counts model tokens."""
    rows = [{"embedding": vector, "index": i, "text": _preview(text), "processing_info": None}
            for i, (vector, text) in enumerate(zip(vectors, texts, strict=True))]
    return {
        "embeddings": rows, "vectors": vectors, "dim": dim, "backend": backend, "device": device,
        "processing_time": seconds, "model_info": model,
        "usage": {"total_texts": len(texts), "total_tokens": tokens, "processing_time_ms": seconds * 1000,
                  "backend": backend, "batch_size": min(data.batch_size, len(texts)),
                  "normalize": data.normalize},
        "timestamp": _now(), "num_texts": len(texts),
    }


def rerank_response(ranked: list[tuple[int, float]], passages: list[str], query: str, *, top_k: int,
                    return_documents: bool, model: str, backend: str, device: str, method: str,
                    seconds: float, batch: bool = False) -> dict:
    """embed-rerank's ``RerankResponse``: results best first (``text`` left out unless
    ``return_documents``), with ``usage``. ``num_passages`` is the result count on ``/api/v1/rerank/``
    and the passage count in a ``/batch`` item, as embed-rerank answers."""
    results = []
    for index, score in ranked:
        row: dict = {"text": passages[index]} if return_documents else {}
        results.append({**row, "score": score, "index": index})
    return {
        "results": results, "query": query.strip(), "backend": backend, "device": device, "method": method,
        "processing_time": seconds, "model_info": model,
        "usage": {"total_passages": len(passages), "returned_passages": len(results),
                  "processing_time_ms": seconds * 1000, "backend": backend, "top_k": top_k,
                  "query_length": len(query.strip())},
        "timestamp": _now(), "num_passages": len(passages) if batch else len(results),
    }


def openai_rerank_response(ranked: list[tuple[int, float]], passages: list[str], *, return_documents: bool,
                           model: str, tokens: int) -> dict:
    """embed-rerank's OpenAI-style rerank answer ``{object, data: [{index, score, document?}], model,
    usage}``; ``usage.total_tokens`` counts model tokens."""
    data = [{"index": index, "score": score, **({"document": passages[index]} if return_documents else {})}
            for index, score in ranked]
    return {"object": "list", "data": data, "model": model,
            "usage": {"total_passages": len(passages), "returned_passages": len(data),
                      "total_tokens": tokens}}


def error_body(error: GatewayError) -> dict:
    """A 422 in FastAPI's ``{"detail": [...]}`` shape; anything else as embed-rerank's HTTPException
    handler writes it: ``{"error": "api_error", "detail", "status_code"}``."""
    if isinstance(error, ValidationFailed):
        return {"detail": validation_detail(error)}
    return {"error": "api_error", "detail": error.message, "status_code": error.status}


def _preview(text: str) -> str:
    return text if len(text) <= 100 else f"{text[:97]}..."


def _now() -> str:
    return datetime.now().isoformat()


def encode(body: object) -> bytes:
    """JSON bytes of a response body."""
    return msgspec.json.encode(body)


# JSON Schemas of the three answers above, for the OpenAPI document (they are built as dicts, for speed
# and embed-rerank's key order, so no Struct describes them). compat_tests/test_openapi_document.py checks
# real answers against them.
def _object(required: bool = True, **properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties) if required else []}


_NUMBER, _INT, _STR = {"type": "number"}, {"type": "integer"}, {"type": "string"}
_VECTORS = {"type": "array", "items": {"type": "array", "items": _NUMBER}}
EMBED_RESPONSE_SCHEMA = _object(
    embeddings={"type": "array", "items": _object(embedding={"type": "array", "items": _NUMBER}, index=_INT,
                                                  text=_STR, processing_info={"type": "null"})},
    vectors=_VECTORS, dim=_INT, backend=_STR, device=_STR, processing_time=_NUMBER, model_info=_STR,
    usage=_object(total_texts=_INT, total_tokens=_INT, processing_time_ms=_NUMBER, backend=_STR,
                  batch_size=_INT, normalize={"type": "boolean"}),
    timestamp=_STR, num_texts=_INT,
)
RERANK_RESPONSE_SCHEMA = _object(
    results={"type": "array", "items": {**_object(score=_NUMBER, index=_INT),
                                        "properties": {"text": _STR, "score": _NUMBER, "index": _INT}}},
    query=_STR, backend=_STR, device=_STR, method=_STR, processing_time=_NUMBER, model_info=_STR,
    usage=_object(total_passages=_INT, returned_passages=_INT, processing_time_ms=_NUMBER, backend=_STR,
                  top_k=_INT, query_length=_INT),
    timestamp=_STR, num_passages=_INT,
)
OPENAI_RERANK_RESPONSE_SCHEMA = _object(
    object={"const": "list"},
    data={"type": "array", "items": {**_object(index=_INT, score=_NUMBER),
                                     "properties": {"index": _INT, "score": _NUMBER, "document": _STR}}},
    model=_STR,
    usage=_object(total_passages=_INT, returned_passages=_INT, total_tokens=_INT),
)
