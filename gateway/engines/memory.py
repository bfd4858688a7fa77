"""Giving back the memory of a dropped engine (a model that failed to load or warm up)."""

from __future__ import annotations

import gc
import logging
import sys

log = logging.getLogger(__name__)


def free_memory() -> None:
    """Collect unreachable objects (an engine's weights may sit in reference cycles), then empty the
    caching allocators of the libraries already imported, so the freed weights go back to the device:
    ``torch.cuda.empty_cache()`` when CUDA was initialised, ``torch.mps.empty_cache()`` on Apple GPUs,
    ``mx.clear_cache()`` for MLX. Imports nothing new; failures are logged, never raised."""
    gc.collect()
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        if torch is not None and torch.backends.mps.is_available():
            torch.mps.empty_cache()
    except Exception:  # noqa: BLE001 - freeing memory is best effort
        log.warning("could not empty torch's memory cache", exc_info=True)
    mx = sys.modules.get("mlx.core")
    try:
        if mx is not None:
            clear = getattr(mx, "clear_cache", None) or mx.metal.clear_cache  # mx.metal's before MLX 0.24
            clear()
    except Exception:  # noqa: BLE001
        log.warning("could not empty MLX's memory cache", exc_info=True)
