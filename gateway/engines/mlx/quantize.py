"""MLX weight quantization at load (``ModelConfig.quantize``), chosen by the model's size for ``auto``.

``auto`` keeps a model at full precision unless its full-precision weights exceed a budget of
``WEIGHT_BUDGET_FRACTION`` (a quarter) of the machine's memory; then it takes the highest precision
whose weights fit the budget (8 bits, else 4 bits; 4 bits with a warning when even those do not fit).
For a 7B model in bf16 (13.0 GiB) that gives the seed's tiers: full precision on a 64 GB machine (budget
16 GiB), 8 bits on a 32 GB one (6.9 GiB of 8), 4 bits on a 16 GB one (3.7 GiB of 4); a small model
such as all-MiniLM-L6-v2 (0.09 GiB) stays at full precision everywhere. Sizes come from the folder's
safetensors headers before anything is loaded (``folder_weight_sizes``).

``none``, ``q8`` and ``q4`` force a choice. Folders that are already quantized (an MLX ``quantization``
entry in ``config.json``) load as they are, whatever the setting. Quantization is MLX's own
(``mlx.nn.quantize``: affine, group size 64, a scale and a bias per group in the weight's dtype, so 8.5
or 4.5 bits per bf16 weight, 9 or 5 per fp32 weight).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GIB = 2**30
WEIGHT_BUDGET_FRACTION = 0.25  # of the machine's memory, for the weights of one model
GROUP_SIZE = 64
EMBEDDING_MIN_BITS = 8
BITS = {"q8": 8, "q4": 4, "none": None}
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
               "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")

Tensor = tuple[str, tuple[int, ...], str]  # (name, shape, safetensors dtype such as "BF16")


@dataclass(frozen=True, slots=True)
class WeightSizes:
    """Bytes the weights a model keeps take at full precision (as stored) and quantized to 8 and 4 bits."""

    full: int
    q8: int
    q4: int

    def at(self, bits: int | None) -> int:
        """Bytes at ``bits`` (None: full precision)."""
        return {None: self.full, 8: self.q8, 4: self.q4}[bits]


@dataclass(frozen=True, slots=True)
class QuantizeChoice:
    """What to do with a model's weights at load, and why (for the start-up log and ``/health``).

    Attributes:
        bits: 8 or 4 to quantize at load, None to keep the weights as they are.
        reason: one sentence, e.g. ``full-precision weights 0.09 GiB fit the budget of 5.9 GiB (...)``.
        fits: False when ``auto`` found that even 4-bit weights exceed the budget (logged as a warning).
    """

    bits: int | None
    reason: str
    fits: bool = True


def machine_memory_bytes() -> int:
    """The memory MLX can use: the GPU's (unified memory on Apple Silicon), else the machine's RAM."""
    import os

    import mlx.core as mx

    size = mx.device_info().get("memory_size") if mx.default_device().type == mx.DeviceType.gpu else None
    return int(size or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _stored_bytes(shape: tuple[int, ...], dtype: str) -> int:
    return math.prod(shape) * DTYPE_BYTES.get(dtype, 4)


def _quantized_bytes(name: str, shape: tuple[int, ...], dtype: str, bits: int) -> int:
    """Bytes of one tensor after ``quantize_model`` at ``bits``: linear and embedding weights (2-D, input
    size a multiple of the group size) become ``bits`` per value (embedding tables at least 8) plus a scale
    and a bias per group of 64 in the weight's dtype; everything else stays as stored."""
    stored = _stored_bytes(shape, dtype)
    size = stored // DTYPE_BYTES.get(dtype, 4)
    quantizable = name.endswith(".weight") and len(shape) == 2 and shape[-1] % GROUP_SIZE == 0
    if not (quantizable and dtype in FLOAT_DTYPES):
        return stored
    if "embed" in name:  # word / position / token-type tables, embed_tokens
        bits = max(bits, EMBEDDING_MIN_BITS)
    return size * bits // 8 + size // GROUP_SIZE * 2 * DTYPE_BYTES[dtype]


def weight_sizes(tensors: Iterable[Tensor], *, keep: Callable[[str], bool] = lambda name: False,
                 drop: Callable[[str], bool] = lambda name: False) -> WeightSizes:
    """Sizes of a model's weights from its tensors' names, shapes and dtypes.

    Args:
        tensors: ``(name, shape, dtype)`` per tensor, dtype as safetensors spells it (``F32``, ``BF16``).
        keep: names of tensors that stay at full precision when quantizing (classifier heads, a vision tower).
        drop: names of tensors the engine never loads (an embedder's LM head).
    """
    full = q8 = q4 = 0
    for name, shape, dtype in tensors:
        if drop(name):
            continue
        stored = _stored_bytes(shape, dtype)
        full += stored
        q8 += stored if keep(name) else _quantized_bytes(name, shape, dtype, 8)
        q4 += stored if keep(name) else _quantized_bytes(name, shape, dtype, 4)
    return WeightSizes(full=full, q8=q8, q4=q4)


def folder_tensors(path: str | Path) -> list[Tensor]:
    """``(name, shape, dtype)`` of every tensor in the folder's ``*.safetensors`` files, read from their
    headers (nothing is loaded). Empty when the folder has no safetensors files."""
    from safetensors import safe_open

    tensors: list[Tensor] = []
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safe_open handle is not a dict)
                piece = handle.get_slice(name)
                tensors.append((name, tuple(piece.get_shape()), piece.get_dtype()))
    return tensors


def folder_weight_sizes(path: str | Path, *, keep: Callable[[str], bool] = lambda name: False,
                        drop: Callable[[str], bool] = lambda name: False) -> WeightSizes:
    """``weight_sizes`` of the folder's safetensors weights (see ``folder_tensors``)."""
    return weight_sizes(folder_tensors(path), keep=keep, drop=drop)


def _gib(size: float) -> str:
    return f"{size / GIB:.2f} GiB"


def choose_auto(sizes: WeightSizes, memory_bytes: int,
                fraction: float = WEIGHT_BUDGET_FRACTION) -> QuantizeChoice:
    """The ``auto`` rule: full precision when ``sizes.full`` fits ``fraction`` of ``memory_bytes``, else
    the highest precision that fits (8 bits, else 4 bits), else 4 bits with ``fits=False``."""
    budget = memory_bytes * fraction
    of = f"the weight budget of {_gib(budget)} ({fraction:g} of {_gib(memory_bytes)} memory)"
    if sizes.full <= budget:
        return QuantizeChoice(None, f"full-precision weights {_gib(sizes.full)} fit {of}")
    for bits in (8, 4):
        if sizes.at(bits) <= budget:
            return QuantizeChoice(bits, f"full-precision weights {_gib(sizes.full)} exceed {of}; "
                                        f"{bits}-bit weights {_gib(sizes.at(bits))} fit")
    return QuantizeChoice(4, f"full-precision weights {_gib(sizes.full)} exceed {of}, and so do 4-bit "
                             f"weights {_gib(sizes.q4)}: loading 4-bit anyway (set quantize or use a "
                             "smaller model if memory runs out)", fits=False)


def resolve(quantize: str | None, *, prequantized_bits: int | None = None,
            sizes: Callable[[], WeightSizes] | WeightSizes | None = None,
            memory_bytes: int | None = None) -> QuantizeChoice:
    """How many bits to quantize a model to at load (None: keep its weights as they are), and why.

    Args:
        quantize: the model's ``quantize`` setting: ``auto`` (or None), ``none``, ``q8`` or ``q4``.
        prequantized_bits: the folder's own MLX quantization (then nothing more is done), None if none.
        sizes: the model's ``WeightSizes`` (or a function computing them), needed for ``auto`` only.
        memory_bytes: the machine's memory for ``auto`` (default: ``machine_memory_bytes()``).

    Raises:
        ValueError: an unknown setting, or ``auto`` without ``sizes``.
    """
    if prequantized_bits is not None:
        return QuantizeChoice(None, f"the folder is already {prequantized_bits}-bit MLX-quantized")
    if quantize in (None, "auto"):
        if sizes is None:
            raise ValueError("quantize = 'auto' needs the model's weight sizes")
        sizes = sizes() if callable(sizes) else sizes
        return choose_auto(sizes, machine_memory_bytes() if memory_bytes is None else memory_bytes)
    if quantize not in BITS:
        raise ValueError(f"unknown quantize setting {quantize!r}; choose auto, none, q8 or q4")
    return QuantizeChoice(BITS[quantize], f"quantize = {quantize!r} is set")


def announce(model_name: str, choice: QuantizeChoice) -> None:
    """Log the choice and its reason at start-up (a warning when ``auto`` found nothing that fits)."""
    what = quantization_name(choice.bits) or "none"
    (log.info if choice.fits else log.warning)("MLX quantization of %s at load: %s (%s)", model_name, what,
                                                choice.reason)


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
