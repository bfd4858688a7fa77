"""Facts about a loaded MLX model that every MLX engine reports in its ``ModelSpec``: where MLX runs, the
weights' dtype and their parameter count. A leaf of ``engines/mlx/``, so the engines share it without
importing one another."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten


def device_name() -> str:
    """``gpu`` or ``cpu``: where MLX runs forward passes by default."""
    return "gpu" if mx.default_device().type == mx.DeviceType.gpu else "cpu"


def weights_dtype(model: nn.Module) -> str:
    """Dtype name of the model's first floating-point weight (quantized layers keep float scales)."""
    for _, value in tree_flatten(model.parameters()):
        if mx.issubdtype(value.dtype, mx.floating):
            return str(value.dtype).removeprefix("mlx.core.")
    return "float32"


def parameter_count(model: nn.Module) -> int:
    """Weight values the model holds, quantized layers counted unpacked (without their scales and biases),
    so a quantized copy counts as its original."""
    bits = {name: module.bits for name, module in model.named_modules()
            if isinstance(module, nn.QuantizedLinear | nn.QuantizedEmbedding)}
    total = 0
    for key, value in tree_flatten(model.parameters()):
        owner, _, leaf = key.rpartition(".")
        if owner in bits and leaf in ("scales", "biases"):
            continue
        total += value.size * 32 // bits[owner] if owner in bits and leaf == "weight" else value.size
    return total
