"""gateway.protocol.quantization against sentence-transformers' reference ``quantize_embeddings``."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers.quantization import quantize_embeddings

from gateway.protocol.quantization import INT8_RANGE, PRECISIONS, quantize


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fixed_ranges(dim: int) -> np.ndarray:
    """Our calibration in sentence-transformers' layout: ``(2, dim)`` rows low / high."""
    return np.tile(np.array(INT8_RANGE, dtype=np.float32)[:, None], (1, dim))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_matches_sentence_transformers_exactly(precision: str) -> None:
    vectors = np.concatenate([unit_vectors(200, 384), [[1.0, -1.0, 0.0] + [0.0] * 381]]).astype(np.float32)
    ranges = fixed_ranges(384) if precision.endswith("int8") else None
    expected = quantize_embeddings(vectors, precision=precision, ranges=ranges)
    got = quantize(vectors, precision)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_shapes_and_dtypes() -> None:
    vectors = unit_vectors(3, 64)
    assert quantize(vectors, "int8").shape == (3, 64) and quantize(vectors, "int8").dtype == np.int8
    assert quantize(vectors, "uint8").dtype == np.uint8
    assert quantize(vectors, "binary").shape == (3, 8) and quantize(vectors, "binary").dtype == np.int8
    assert quantize(vectors, "ubinary").shape == (3, 8) and quantize(vectors, "ubinary").dtype == np.uint8


def test_a_vector_does_not_depend_on_its_batch() -> None:
    """The fixed range: quantizing alone or among very different vectors gives the same codes."""
    vectors = unit_vectors(10, 384)
    alone = quantize(vectors[:1], "int8")
    among = quantize(np.concatenate([vectors[:1], 0.9 * np.sign(vectors[1:])]), "int8")[:1]
    np.testing.assert_array_equal(alone, among)


def test_bits_are_signs_and_binary_is_ubinary_minus_128() -> None:
    vectors = unit_vectors(5, 128)
    ubinary = quantize(vectors, "ubinary")
    np.testing.assert_array_equal(np.unpackbits(ubinary, axis=1).astype(bool), vectors > 0)
    binary = quantize(vectors, "binary")
    np.testing.assert_array_equal(binary.astype(np.int16), ubinary.astype(np.int16) - 128)


def test_int8_preserves_direction() -> None:
    """Dequantized int8 (bucket centres) stays close to the float vector on 384-dim unit vectors."""
    vectors = unit_vectors(100, 384)
    step = (INT8_RANGE[1] - INT8_RANGE[0]) / 255
    restored = INT8_RANGE[0] + (quantize(vectors, "uint8").astype(np.float32) + 0.5) * step
    cosine = np.sum(vectors * restored, axis=1) / np.linalg.norm(restored, axis=1)
    assert cosine.min() > 0.998


def test_rejects_bits_of_a_dimension_not_divisible_by_8_and_unknown_precisions() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        quantize(unit_vectors(1, 20), "binary")
    with pytest.raises(ValueError, match="unknown precision"):
        quantize(unit_vectors(1, 16), "int4")
