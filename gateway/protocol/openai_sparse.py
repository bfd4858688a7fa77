"""``POST /v1/embeddings`` with a sparse model (SPLADE, inference-free SPLADE): each ``data[i].embedding``
is ``{"indices": [...], "values": [...]}``, indices ascending, the shape Qdrant, Pinecone and Milvus take
for sparse vectors (vLLM and Infinity answer sparse models the same way).

Options that only mean something for dense vectors are refused with a 400 naming the field: a base64 or
quantized ``encoding_format`` (and Voyage's / Jina's equivalents), ``dimensions`` / ``output_dimension``,
``normalized`` and ``late_chunking``. ``max_active_dims`` (an extension) keeps each vector's top-k terms.
"""

from __future__ import annotations

import uuid

import msgspec
import numpy as np

from gateway.errors import InvalidRequest


class SparseEmbedding(msgspec.Struct):
    indices: list[int]
    values: list[float]


class SparseEmbeddingData(msgspec.Struct):
    index: int
    embedding: SparseEmbedding
    object: str = "embedding"


class SparseUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class SparseEmbeddingResponse(msgspec.Struct):
    data: list[SparseEmbeddingData]
    model: str
    usage: SparseUsage
    object: str = "list"
    id: str = ""


def check_sparse_options(fields: dict[str, object]) -> None:
    """Refuse dense-only options: ``fields`` maps each request field to its value (None: not sent).

    Raises:
        InvalidRequest: naming the first dense-only field given (``encoding_format`` other than
            ``float``, ``dimensions``, ``output_dimension``, ``output_dtype`` / ``embedding_type`` other
            than ``float``, ``normalized``, ``late_chunking``).
    """
    for field, value in fields.items():
        if value is None or value is False or (field != "dimensions" and value == "float"):
            continue
        if field == "output_dimension" or field == "dimensions":
            why = "a sparse vector has one weight per vocabulary term, it cannot be shortened"
        elif field in ("normalized", "late_chunking"):
            why = "it applies to dense vectors only"
        else:
            why = "sparse vectors are answered as float indices/values lists only"
        raise InvalidRequest(f"'{field}' ({value!r}) is not supported by a sparse model: {why}", param=field)


def to_sparse_response(rows: list[tuple[np.ndarray, np.ndarray]], model: str, tokens: int) -> bytes:
    """``(indices int32 ascending, values float32)`` per input -> the response JSON bytes."""
    data = [SparseEmbeddingData(i, SparseEmbedding(ix.tolist(), vals.tolist()))
            for i, (ix, vals) in enumerate(rows)]
    return msgspec.json.encode(SparseEmbeddingResponse(data, model, SparseUsage(tokens, tokens),
                                                       id=f"embd-{uuid.uuid4().hex}"))
