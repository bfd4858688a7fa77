"""TEI's ``POST /embed_sparse`` and ``POST /embed_all`` wire format (text-embeddings-inference's router,
``router/src/http/types.rs``: ``EmbedSparseRequest`` / ``EmbedAllRequest``).

``/embed_sparse`` answers one list of ``{"index", "value"}`` per input (the non-zero vocabulary weights of
a SPLADE-style model, indices ascending); ``/embed_all`` one list of token vectors per input (a
multi-vector model's vectors, one per token it keeps). As on ``/embed``, ``model`` is an optional
extension (default: the first model with that output); ``max_active_dims`` is an extension of
``/embed_sparse`` (top-k terms, as sentence-transformers). Errors are TEI's ``{"error", "error_type"}``.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from gateway.errors import InvalidRequest
from gateway.protocol.nulls import NullAsDefault

# TEI's ``Input`` (as ``tei.EmbedInputs``): a text, texts, token ids, or texts and token-id lists
EmbedInputs = str | list[str | int | list[int]]


class EmbedSparseRequest(NullAsDefault, kw_only=True):
    """``POST /embed_sparse`` body."""

    inputs: EmbedInputs
    truncate: bool | None = None  # None: the model's truncation policy
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = "Right"
    prompt_name: str | None = None
    max_active_dims: int | None = None  # extension: keep the top-k terms of each vector
    model: str | None = None


class EmbedAllRequest(NullAsDefault, kw_only=True):
    """``POST /embed_all`` body."""

    inputs: EmbedInputs
    truncate: bool | None = None
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = "Right"
    prompt_name: str | None = None
    model: str | None = None


class SparseValue(msgspec.Struct):
    index: int
    value: float


def encode_sparse(rows: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """``(indices int32, values float32)`` per input -> TEI's ``[[{"index", "value"}, ...], ...]`` JSON."""
    return msgspec.json.encode([[SparseValue(i, v) for i, v in zip(ix.tolist(), vals.tolist(), strict=True)]
                                for ix, vals in rows])


def encode_token_vectors(rows: list[np.ndarray]) -> bytes:
    """``(tokens, dim)`` float32 per input -> TEI's ``[[[float, ...] per token] per input]`` JSON."""
    return msgspec.json.encode([row.tolist() for row in rows])


def require_texts(inputs: list) -> None:
    """``/embed_all``: token-id inputs are refused (a multi-vector model's ids depend on its side's prefix).

    Raises:
        InvalidRequest: param ``inputs``.
    """
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest("'inputs' must be texts for a multi-vector model: its token ids depend on the "
                             "query / document prefix it adds", param="inputs")
