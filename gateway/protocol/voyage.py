"""Voyage AI wire format: its embeddings fields (served on the OpenAI route) and its rerank body.

Specs: https://docs.voyageai.com/reference/embeddings-api and https://docs.voyageai.com/reference/reranker-api.

- Embeddings: ``input_type`` (``query`` / ``document``, mapped to the model's prompts), ``truncation``
  (default true; false makes a too-long input a 400), ``output_dimension`` (Matryoshka), ``output_dtype``
  (``float``, ``int8``, ``uint8``, ``binary``, ``ubinary``) and ``encoding_format`` (null or ``base64``:
  base64 of the little-endian bytes of that dtype, which the ``voyageai`` SDK asks for by default and decodes
  with ``np.frombuffer``). The response is the OpenAI shape, which Voyage's is.
- Rerank: ``{query, documents, model, top_k, return_documents, truncation}`` -> ``{object: "list", data:
  [{index, relevance_score, document?}], model, usage: {total_tokens}}``, best first. Told apart from a
  Cohere body on the same paths by ``top_k`` (or ``truncation`` without Cohere's ``top_n``).
- Errors carry ``detail``, which the SDK reads (Cohere's rerank errors already do; see
  ``gateway.protocol.openai_dialects`` for the embeddings route).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.protocol.nulls import NullAsDefault

# "passage" is NVIDIA NIM's name for a document on the same field (LangChain's NVIDIAEmbeddings sends it)
InputType = Literal["query", "document", "passage"]
OutputDtype = Literal["float", "int8", "uint8", "binary", "ubinary"]
PROMPT_NAMES = {"query": "query", "document": "document", "passage": "document"}


class RerankRequest(NullAsDefault, kw_only=True):
    """Voyage ``POST /v1/rerank`` body."""

    query: str
    documents: list[str]
    model: str | None = None  # extension: the server's default reranker when absent
    top_k: int | None = None
    return_documents: bool | None = False
    truncation: bool | None = True  # false: a too-long query or document is a 400


class RerankResult(msgspec.Struct):
    index: int
    relevance_score: float
    document: str | msgspec.UnsetType = msgspec.UNSET  # present only with return_documents


class Usage(msgspec.Struct):
    total_tokens: int


class RerankResponse(msgspec.Struct):
    data: list[RerankResult]
    model: str
    usage: Usage
    object: str = "list"


def is_rerank_body(body: bytes) -> bool:
    """Whether a JSON rerank body is Voyage's: it has ``top_k``, or ``truncation`` and no ``top_n``."""
    try:
        fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.MsgspecError:
        return False
    return "top_k" in fields or ("truncation" in fields and "top_n" not in fields)


def to_rerank_response(ranked: list[tuple[int, float]], documents: list[str], *, return_documents: bool,
                       model: str, tokens: int) -> bytes:
    """Encode ``(index, relevance_score)`` pairs, best first, as Voyage's rerank response."""
    data = [RerankResult(index, score, documents[index] if return_documents else msgspec.UNSET)
            for index, score in ranked]
    return msgspec.json.encode(RerankResponse(data, model, Usage(tokens)))
