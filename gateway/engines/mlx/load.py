"""Which MLX engine serves a model folder: ``load_mlx_engine``, the mlx entry of ``engines.ENGINES``.

Kept apart from the engines it picks between (``engine``, ``siglip``, ``vlm``) so none of them imports
another through it.
"""

from __future__ import annotations

import logging
import os

import mlx.core as mx

from gateway.config import ModelConfig
from gateway.engines import Engine
from gateway.engines.mlx.engine import MlxEngine
from gateway.engines.mlx.weights import device_name
from gateway.engines.vision.dual_encoders import is_dual_encoder, mlx_refusal, read_hf_config
from gateway.engines.vision.vlm_formats import is_vision_language

log = logging.getLogger(__name__)

MEMORY_FRACTION_ENV = "GATEWAY_MLX_MEMORY_FRACTION"


def apply_memory_fraction(fraction: float | None) -> None:
    """Cap MLX's memory at ``fraction`` of the GPU's memory; a no-op on CPU or when ``fraction`` is None."""
    total = mx.device_info().get("memory_size") if fraction and device_name() == "gpu" else None
    if total:
        mx.set_memory_limit(int(total * fraction))
        log.info("MLX memory limit set to %.1f GiB", total * fraction / 2**30)


def load_mlx_engine(
    config: ModelConfig, path: str, memory_fraction: float | None = None, **_options: object
) -> Engine:
    """Load ``path`` as an MLX model (see ``MlxEngine``).

    Args:
        config: the model's configuration.
        path: local model folder.
        memory_fraction: cap on MLX GPU memory as a fraction of the device's; default: the
            ``GATEWAY_MLX_MEMORY_FRACTION`` environment variable, else no cap.

    Raises:
        ValueError: the folder's architecture or pipeline is one the MLX engine does not run (CLIP, and
            sequence classifiers: the message names the torch engine).
    """
    if config.task == "classify":  # mlx-embeddings has no sequence-classification heads with labels
        raise ValueError(f"model {config.name!r}: the MLX engine does not serve sequence classifiers "
                         "(task = 'classify'); serve it with engine = 'torch'")
    if memory_fraction is None and os.environ.get(MEMORY_FRACTION_ENV):
        memory_fraction = float(os.environ[MEMORY_FRACTION_ENV])
    apply_memory_fraction(memory_fraction)
    hf_config = read_hf_config(path)
    if refusal := mlx_refusal(hf_config):  # CLIP: no MLX implementation, the torch engine serves it
        raise ValueError(refusal)
    if is_dual_encoder(hf_config):  # SigLIP: mlx-embeddings' architecture (siglip.py)
        from gateway.engines.mlx.siglip import MlxSiglipEngine

        return MlxSiglipEngine(config, path, device_name())
    if is_vision_language(hf_config):  # Qwen2-VL / Qwen3-VL embedders: mlx-vlm (vlm.py)
        from gateway.engines.mlx.vlm import MlxVlmEngine

        return MlxVlmEngine(config, path)
    return MlxEngine(config, path)
