"""Reference answers for the Cohere and TEI embed tests: in-process sentence-transformers and the
published quantization of sentence-transformers, computed independently of the server's code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from sentence_transformers.quantization import quantize_embeddings

LONG_TEXT = " ".join(f"word{i} is number {i}." for i in range(200))  # ~1000 tokens, past every limit


@contextmanager
def truncating(model, side: str = "right", max_tokens: int | None = None) -> Iterator[None]:
    """Make the reference ``SentenceTransformer`` cut long texts from ``side`` at ``max_tokens``."""
    tokenizer = model.tokenizer
    saved = tokenizer.truncation_side, model.max_seq_length
    tokenizer.truncation_side = side
    model.max_seq_length = max_tokens or model.max_seq_length
    try:
        yield
    finally:
        tokenizer.truncation_side, model.max_seq_length = saved


def reference_vectors(model, texts: list[str], dimensions: int | None = None, **kwargs) -> np.ndarray:
    """``(n, dim)`` float32 from sentence-transformers, Matryoshka-truncated and re-normalized."""
    vectors = model.encode(texts, convert_to_numpy=True, **kwargs)
    if dimensions:
        vectors = vectors[:, :dimensions]
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def requantize(floats: np.ndarray, precision: str) -> np.ndarray:
    """Quantize float rows as the server documents: fixed range [-1, 1] for int8/uint8, sign bits."""
    floats = np.asarray(floats, dtype=np.float32)
    ranges = np.array([[-1.0], [1.0]], dtype=np.float32).repeat(floats.shape[1], axis=1)
    return quantize_embeddings(floats, precision=precision, ranges=ranges if "int8" in precision else None)


def check_bits(floats: np.ndarray, ubinary: np.ndarray, binary: np.ndarray | None = None) -> None:
    """Unpacked ``ubinary`` bits are the signs of ``floats``; ``binary`` is ``ubinary - 128``."""
    ubinary = np.asarray(ubinary)
    assert ubinary.shape == (floats.shape[0], floats.shape[1] // 8)
    assert ubinary.min() >= 0 and ubinary.max() <= 255
    np.testing.assert_array_equal(np.unpackbits(ubinary.astype(np.uint8), axis=1).astype(bool), floats > 0)
    if binary is not None:
        np.testing.assert_array_equal(np.asarray(binary), ubinary.astype(np.int64) - 128)

