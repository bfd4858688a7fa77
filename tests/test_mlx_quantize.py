"""The MLX quantize-by-memory rule (``gateway.engines.mlx_quantize``)."""

from __future__ import annotations

import pytest

from gateway.engines.mlx_quantize import GIB, bits_for_memory, quantization_name, resolve_bits


@pytest.mark.parametrize(("gib", "bits"), [(128, None), (64, None), (61, None), (48, 8), (32, 8), (24, 4),
                                           (16, 4), (8, 4)])
def test_auto_follows_the_machines_memory(gib, bits):
    assert bits_for_memory(gib * GIB) == bits
    assert resolve_bits("auto", prequantized=False, memory_bytes=gib * GIB) == bits


def test_explicit_settings_and_prequantized_folders():
    assert [resolve_bits(q, prequantized=False, memory_bytes=16 * GIB) for q in ("none", "q8", "q4")] == [
        None, 8, 4]
    assert all(resolve_bits(q, prequantized=True, memory_bytes=16 * GIB) is None for q in ("auto", "q4"))
    assert [quantization_name(b) for b in (None, 8, 4)] == [None, "q8", "q4"]
    with pytest.raises(ValueError):
        resolve_bits("q3", prequantized=False)
