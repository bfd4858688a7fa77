"""Which number format a model's forward pass runs in: the config's ``dtype`` resolved for the device.

``auto`` picks the hardware's fast format: bfloat16 on a CPU with AMX or AVX512-BF16 (Intel Xeon 4th
generation and later: bf16 matrix products run several times faster than fp32 there), else float32 on
CPU; float16 on CUDA, or bfloat16 where the GPU supports it; float16 on MPS. Engines load weights in this
dtype and always return float32 vectors and scores: pooling, normalization and logits stay float32, so
the service and protocol layers never see the difference.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Literal

DType = Literal["auto", "float32", "bfloat16", "float16"]
FAST_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX512-BF16), read from the kernel's
    CPU flags on Linux x86-64 (False elsewhere: other CPUs emulate bf16 and run it slower than fp32)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")),
                 [])
    return any(flag in flags for flag in FAST_BF16_CPU_FLAGS)


def resolve_torch_dtype(requested: DType | None, device: str) -> str:
    """The dtype name (``float32``, ``bfloat16`` or ``float16``) a torch forward pass runs in on ``device``.

    Args:
        requested: the model's ``dtype`` setting; None or ``auto`` picks by hardware (module docstring).
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).

    Raises:
        ValueError: ``float16`` on a CPU (torch's CPU kernels for it are slow or missing).
    """
    kind = device.split(":")[0]
    if requested not in (None, "auto"):
        if requested == "float16" and kind == "cpu":
            raise ValueError("dtype 'float16' is not supported on CPU; use 'bfloat16' or 'float32'")
        return requested
    if kind == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if kind == "mps":
        return "float16"
    return "bfloat16" if cpu_has_fast_bf16() else "float32"
