"""Embedding quantization: int8/uint8 by a fixed linear scale, binary/ubinary as packed sign bits.

The definitions are those of sentence-transformers' ``quantize_embeddings``
(https://sbert.net/examples/sentence_transformer/applications/embedding-quantization/README.html), which
Cohere's ``int8``/``uint8``/``binary``/``ubinary`` embedding types follow
(https://docs.cohere.com/reference/embed):

- ``uint8``: ``clip(floor((x - low) / step), 0, 255)`` with ``step = (high - low) / 255``;
  ``int8`` is the same value minus 128.
- ``ubinary``: one bit per dimension, ``1`` where ``x > 0``, packed big-endian 8 to a byte
  (``np.packbits``); ``binary`` is the same byte minus 128, as int8. The dimension must be a multiple of 8.

Calibration: ``low, high = -1, 1`` for every dimension, fixed. sentence-transformers without calibration
data takes per-dimension ranges from the batch being quantized, so a text's int8 vector would change
with the other texts of the request; a server must not do that. ``[-1, 1]`` is the only range that
bounds every component of a unit-length vector, so normalized embeddings never saturate and every
request, batch and server quantizes a vector the same way. The cost is resolution (a step of 2/255 for
components that are mostly within +-0.2 on 384 dimensions); the measured cosine between the float
vector and its dequantized int8 is in tests/test_quantization.py. Components of models that do not
normalize saturate at -1 and 1.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Precision = Literal["int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("int8", "uint8", "binary", "ubinary")
INT8_RANGE = (-1.0, 1.0)  # calibration range of every dimension (see module docstring)


def check_packable(dim: int, precision: str) -> None:
    """Raises ValueError when ``precision`` packs bits and ``dim`` is not a multiple of 8."""
    if precision in ("binary", "ubinary") and dim % 8:
        raise ValueError(f"{precision} embeddings need a dimension divisible by 8, got {dim}")


def quantize(vectors: np.ndarray, precision: Precision) -> np.ndarray:
    """Quantize float embeddings.

    Args:
        vectors: ``(n, dim)`` float embeddings.
        precision: ``int8`` | ``uint8`` | ``binary`` | ``ubinary``.

    Returns:
        ``(n, dim)`` int8 / uint8 for ``int8`` / ``uint8``; ``(n, dim // 8)`` int8 / uint8 packed bits for
        ``binary`` / ``ubinary``.

    Raises:
        ValueError: unknown precision, or a bit precision with ``dim`` not divisible by 8.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    check_packable(vectors.shape[-1], precision)
    if precision in ("int8", "uint8"):
        low, high = INT8_RANGE
        step = np.float32((high - low) / 255)
        levels = np.clip(np.floor((vectors - np.float32(low)) / step), 0, 255)
        return levels.astype(np.uint8) if precision == "uint8" else (levels - 128).astype(np.int8)
    if precision in ("binary", "ubinary"):
        bits = np.packbits(vectors > 0, axis=-1)
        return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)
    raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")

