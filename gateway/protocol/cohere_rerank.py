"""Cohere (v1, v2) and Jina rerank wire format: one request Struct for every shape, one response.

Specs: https://docs.cohere.com/v1/reference/rerank, https://docs.cohere.com/reference/rerank (v2, whose
request changed three times: the v1 shape; strings with ``max_tokens_per_doc``; the current one without
``return_documents``), and Jina's https://api.jina.ai/redoc#tag/rerank. Every shape decodes into
``RerankRequest``; unknown fields (``priority``, Jina's ``truncation``...) are ignored.

The response carries both vocabularies: Cohere's ``id``/``meta`` and Jina's ``model``/``usage``.
``document`` is present only when ``return_documents`` is true (Cohere's default, false, is used for
Jina too, whose own default is true).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import GatewayError, InvalidRequest
from gateway.protocol.ids import uuid4_str

# A document is a string or an object with a "text" field (or the fields named in rank_fields).
Document = str | dict[str, Any]


class RerankRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/rerank``, ``/v2/rerank``, ``/rerank`` body (Cohere v1, every Cohere v2 shape, Jina)."""

    query: str
    documents: list[Document]
    model: str | None = None  # optional in Cohere v1: the server's default reranker
    top_n: int | None = None  # None (or larger than the document count): all
    rank_fields: list[str] | None = None
    return_documents: bool | None = None
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None


class RerankResult(msgspec.Struct):
    index: int
    relevance_score: float
    document: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET  # UNSET: the key is left out


class ApiVersion(msgspec.Struct):
    version: str


class BilledUnits(msgspec.Struct):
    search_units: int


class MetaTokens(msgspec.Struct):
    input_tokens: int
    output_tokens: int = 0


class Meta(msgspec.Struct):
    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: MetaTokens


class Usage(msgspec.Struct):
    total_tokens: int


class RerankResponse(msgspec.Struct):
    """Cohere's ``{id, results, meta}`` plus Jina's ``{model, usage}``; ``results`` best first."""

    id: str
    results: list[RerankResult]
    meta: Meta
    model: str
    usage: Usage


def document_texts(documents: list[Document], rank_fields: list[str] | None) -> list[str]:
    """The text to rank for each document.

    A string is itself. An object is its ``text`` field, or with ``rank_fields`` the values of the named
    fields in that order, one per line (Cohere: "rerank using the values in title, author, text
    sequentially"), so ``rank_fields=["text"]`` ranks exactly like the default.

    Raises:
        InvalidRequest: an object lacks ``text`` or a named field, or ``text`` is not a string.
    """
    return [
        doc if isinstance(doc, str) else _object_text(i, doc, rank_fields) for i, doc in enumerate(documents)
    ]


def _object_text(index: int, document: dict[str, Any], rank_fields: list[str] | None) -> str:
    if rank_fields:
        missing = [field for field in rank_fields if field not in document]
        if missing:
            raise InvalidRequest(
                f"'documents[{index}]' has no field '{missing[0]}' named in 'rank_fields'", param="documents"
            )
        return "\n".join(_as_text(document[field]) for field in rank_fields)
    text = document.get("text")
    if not isinstance(text, str):
        problem = "has no 'text' field" if text is None else "has a 'text' field that is not a string"
        raise InvalidRequest(
            f"'documents[{index}]' {problem}; send strings, objects with a 'text' string, "
            "or name the fields to rank on in 'rank_fields'",
            param="documents",
        )
    return text


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def to_rerank_response(
    ranked: list[tuple[int, float]],
    documents: list[Document],
    *,
    return_documents: bool,
    model: str,
    tokens: int,
    search_units: int,
    api_version: str,
) -> bytes:
    """Encode the response as JSON bytes.

    Args:
        ranked: ``(index, relevance_score)`` pairs, best first.
        documents: the request's documents, echoed (strings as ``{"text": ...}``) when ``return_documents``.
        api_version: ``"1"`` or ``"2"``, reported in ``meta.api_version.version``.
    """
    results = [
        RerankResult(index, score, _echo(documents[index]) if return_documents else msgspec.UNSET)
        for index, score in ranked
    ]
    meta = Meta(ApiVersion(api_version), BilledUnits(search_units), MetaTokens(tokens))
    response = RerankResponse(uuid4_str(), results, meta, model, Usage(tokens))
    return msgspec.json.encode(response)


def _echo(document: Document) -> dict[str, Any]:
    return {"text": document} if isinstance(document, str) else document


def error_body(error: GatewayError) -> dict:
    """Cohere's ``{"message": ...}``, plus Jina's ``detail`` (which LlamaIndex's ``JinaRerank`` reads)."""
    return {"message": error.message, "detail": error.message}
