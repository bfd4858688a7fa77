"""MLX weight quantization at load, chosen by the machine's memory (``ModelConfig.quantize``).

``auto`` keeps full precision on machines with 64 GB of memory or more, quantizes to 8 bits on ~32 GB
machines and to 4 bits on ~16 GB ones (and below), so that a 7-8B model fits next to everything else
the machine runs; ``none``, ``q8`` and ``q4`` force a choice. Folders that are already quantized (an
MLX ``quantization`` entry in ``config.json``) load as they are, whatever the setting. Quantization is
MLX's own (``mlx.nn.quantize``: affine, group size 64, a float16 scale and bias per group, so 8.5 or
4.5 bits per weight).
"""

from __future__ import annotations

from collections.abc import Callable

GIB = 2**30
FULL_PRECISION_GIB = 60  # "64 GB" machines report a little less once the OS has its share
EIGHT_BIT_GIB = 30  # "32 GB" machines
GROUP_SIZE = 64
EMBEDDING_MIN_BITS = 8
BITS = {"q8": 8, "q4": 4, "none": None}


def machine_memory_bytes() -> int:
    """The memory MLX can use: the GPU's (unified memory on Apple Silicon), else the machine's RAM."""
    import os

    import mlx.core as mx

    size = mx.device_info().get("memory_size") if mx.default_device().type == mx.DeviceType.gpu else None
    return int(size or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def bits_for_memory(memory_bytes: int) -> int | None:
    """The ``auto`` rule: None (full precision) from 60 GiB, 8 bits from 30 GiB, else 4 bits."""
    if memory_bytes >= FULL_PRECISION_GIB * GIB:
        return None
    return 8 if memory_bytes >= EIGHT_BIT_GIB * GIB else 4


def resolve_bits(quantize: str | None, *, prequantized: bool, memory_bytes: int | None = None) -> int | None:
    """How many bits to quantize a model to at load, or None to keep its weights as they are.

    Args:
        quantize: the model's ``quantize`` setting: ``auto`` (or None), ``none``, ``q8`` or ``q4``.
        prequantized: whether the folder is already quantized (then nothing more is done).
        memory_bytes: the machine's memory for ``auto`` (default: ``machine_memory_bytes()``).

    Raises:
        ValueError: an unknown setting.
    """
    if prequantized:
        return None
    if quantize in (None, "auto"):
        return bits_for_memory(machine_memory_bytes() if memory_bytes is None else memory_bytes)
    if quantize not in BITS:
        raise ValueError(f"unknown quantize setting {quantize!r}; choose auto, none, q8 or q4")
    return BITS[quantize]


def quantize_model(model, bits: int, *, skip: Callable[[str], bool] = lambda path: False) -> None:
    """Quantize ``model``'s linear and embedding layers in place to ``bits`` (group size 64).

    Embedding tables get at least ``EMBEDDING_MIN_BITS`` (8): a lookup passes its rounding error straight
    into every token's state, and at 4 bits that alone cost the tiny random Qwen3 embedder of the tests
    half of its cosine loss (0.979 -> 0.988 min cosine to full precision with 8-bit embeddings), for
    about 5% more memory on Qwen3-Embedding-4B (its 151k x 2560 table at 8.5 instead of 4.5 bits).
    Layers whose input size is not a multiple of the group size stay as they are, and so do those whose
    module path ``skip`` returns True for (e.g. a vision tower).
    """
    import mlx.nn as nn

    def predicate(path: str, module) -> bool | dict:
        weight = getattr(module, "weight", None)
        if not (hasattr(module, "to_quantized") and weight is not None and weight.shape[-1] % GROUP_SIZE == 0
                and not skip(path)):
            return False
        if isinstance(module, nn.Embedding) and bits < EMBEDDING_MIN_BITS:
            return {"group_size": GROUP_SIZE, "bits": EMBEDDING_MIN_BITS}
        return True

    nn.quantize(model, group_size=GROUP_SIZE, bits=bits, class_predicate=predicate)


def quantization_name(bits: int | None) -> str | None:
    """``q8`` / ``q4`` for ``ModelSpec.quantization``, None for full precision."""
    return None if bits is None else f"q{bits}"
