"""Which torch engine serves a model folder: ``load_torch_engine``, the torch entry of ``engines.ENGINES``.

Kept apart from the engines it picks between so none of them imports another through it.
"""

from __future__ import annotations

from gateway.config import ModelConfig
from gateway.engines import Engine
from gateway.engines.torch.engine import TorchEngine, pick_device
from gateway.engines.vision.vlm_formats import is_vision_language


def load_torch_engine(config: ModelConfig, path: str, *, cpu_lanes: int | None = None,
                      torchscript: bool = True, **_options: object) -> Engine:
    """Load ``path`` as a sentence-transformers model (``TorchEngine``; ``cpu_lanes``: ``lanes_for``), a
    CLIP / SigLIP folder as a dual encoder (``torch.dual``), or a Qwen2-VL / Qwen3-VL embedder folder with
    the vision-language engine (``torch.vlm``), a sequence classifier (``task = "classify"``,
    ``torch.classifier``), a ``SparseEncoder`` folder (``torch.sparse``), a BGE-M3 folder with its
    FlagEmbedding heads (``torch.bge_m3``) or a ``MultiVectorEncoder`` / PyLate folder
    (``torch.multi_vector``). ``torchscript``: ``TorchEngine``'s traced transformer (``torch.scripted``)."""
    from gateway.engines.vision.dual_encoders import is_dual_encoder, read_hf_config

    if is_dual_encoder(read_hf_config(path)):
        from gateway.engines.torch.dual import TorchDualEncoderEngine

        return TorchDualEncoderEngine(config, path, cpu_lanes)
    if is_vision_language(read_hf_config(path)):
        from gateway.engines.torch.vlm import load_torch_vlm_engine

        return load_torch_vlm_engine(config, path, pick_device(config.device))
    from gateway.engines.detect import detect_model

    kind = detect_model(path).kind
    if kind == "sparse":
        from gateway.engines.torch.sparse import TorchSparseEngine

        return TorchSparseEngine(config, path, cpu_lanes)
    if kind == "bge_m3":
        from gateway.engines.torch.bge_m3 import TorchBgeM3Engine

        return TorchBgeM3Engine(config, path, cpu_lanes)
    if kind == "multi_vector":
        from gateway.engines.torch.multi_vector import TorchMultiVectorEngine

        return TorchMultiVectorEngine(config, path, cpu_lanes)
    if config.task == "classify":
        from gateway.engines.torch.classifier import TorchClassifierEngine

        return TorchClassifierEngine(config, path, cpu_lanes, torchscript=torchscript)
    return TorchEngine(config, path, cpu_lanes, torchscript=torchscript)
