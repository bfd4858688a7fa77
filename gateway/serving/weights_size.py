"""A model folder's weight bytes before loading it, from its safetensors headers (``safetensors.safe_open``
reads the header only: the tensors stay on disk), so ``model_memory_budget`` decides before a load."""

from __future__ import annotations

import math
from pathlib import Path

# bytes per element of each safetensors dtype (https://github.com/huggingface/safetensors, format spec)
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
                "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def weights_bytes(folder: str | Path) -> int:
    """Bytes of every tensor in the ``*.safetensors`` files under ``folder`` (sub-folders included: a
    sentence-transformers Dense layer lives in ``2_Dense/``), as stored; where a folder has none, the size
    of its ``*.bin`` / ``*.pt`` weight files.

    Raises:
        OSError: the folder cannot be read; safetensors' error for a corrupt header.
    """
    from safetensors import safe_open

    root = Path(folder)
    total = 0
    files = sorted(root.rglob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="np") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                part = handle.get_slice(key)
                total += math.prod(part.get_shape()) * _DTYPE_BYTES.get(part.get_dtype(), 4)
    if not files:
        total = sum(p.stat().st_size for pattern in ("*.bin", "*.pt", "*.pth") for p in root.rglob(pattern))
    return total
