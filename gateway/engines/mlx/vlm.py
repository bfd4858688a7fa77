"""MLX engine for vision-language embedders (Ops-MM-embedding-v1, GME, Qwen3-VL-Embedding) on mlx-vlm.

The backbones are mlx-vlm's own ``qwen2_vl`` and ``qwen3_vl_embedding`` model classes; this module adds
what mlx-vlm lacks for serving them as embedders: a loader that reads both transformers 4 and 5 folder
layouts, drops the LM head, and quantizes by size (``quantize``: when the weights exceed a quarter
of memory; the vision tower stays in full precision), and a last-token pooled forward pass over a
right-padded batch. Prompts, images and tokens are prepared exactly as for the torch engine
(``vlm_inputs``), so both engines feed identical inputs.

Threading: one lane. Each call evaluates its result and returns numpy (no lazy graph leaves the engine);
mlx-vlm's per-call position caches are cleared before every pass, so no state carries between batches.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from gateway.config import ModelConfig
from gateway.engines import Tokens
from gateway.engines.mlx.quantize import (
    announce,
    folder_weight_sizes,
    quantization_name,
    quantize_model,
    resolve,
)
from gateway.engines.mlx.weights import device_name, parameter_count, weights_dtype
from gateway.engines.vision.dual_encoders import read_hf_config
from gateway.engines.vision.vlm_batch import collate, last_positions
from gateway.engines.vision.vlm_formats import vlm_format, vlm_spec
from gateway.engines.vision.vlm_inputs import VlmTokenization

# model_type -> the mlx-vlm model package serving it as an embedder
MLX_PACKAGES = {"qwen2_vl": "qwen2_vl", "qwen3_vl": "qwen3_vl_embedding"}
_VISION_MODULES = ("vision_tower",)


def is_vision_weight(name: str) -> bool:
    """Whether a checkpoint tensor belongs to the vision tower (``visual.*`` in Hugging Face layouts,
    ``vision_tower.*`` in MLX ones), which stays at full precision."""
    return "visual." in name or any(m in name for m in _VISION_MODULES)


def mlx_vlm_config(hf_config: dict) -> dict:
    """``config.json`` in the layout mlx-vlm's Qwen configs read: transformers 5's ``rope_parameters``
    become ``rope_scaling`` / ``rope_theta``, its ``qwen3_vl_vision`` vision type is mlx-vlm's
    ``qwen3_vl``, and Qwen2-VL's nested ``text_config`` is lifted to the top (transformers 4's layout)."""
    config = {**hf_config, "model_type": MLX_PACKAGES[hf_config["model_type"]]}
    vision = dict(config.get("vision_config") or {})
    vision["model_type"] = hf_config["model_type"]
    config["vision_config"] = vision
    text = dict(config.get("text_config") or {})
    for holder in (config, text):
        rope = holder.pop("rope_parameters", None)
        if rope and "rope_scaling" not in holder:
            holder["rope_theta"] = rope.get("rope_theta", holder.get("rope_theta"))
            holder["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    if hf_config["model_type"] == "qwen2_vl":
        config = {**text, **{k: v for k, v in config.items() if k != "text_config"}}
        config["model_type"] = "qwen2_vl"
        if "rope_scaling" in config:
            config["rope_scaling"].setdefault("type", config["rope_scaling"].get("rope_type", "mrope"))
    else:
        config["text_config"], config["normalize"] = text, False  # the service normalizes
    return config


def _legacy_keys(weights: dict[str, mx.array]) -> dict[str, mx.array]:
    """Qwen2-VL weights named as transformers 5 saves them, renamed as mlx-vlm's sanitize expects (4.x)."""
    renames = (("model.language_model.", "model."), ("model.visual.", "visual."))
    return {next((new + k[len(old):] for old, new in renames if k.startswith(old)), k): v
            for k, v in weights.items()}


def load_vlm_model(path: str, hf_config: dict) -> tuple[nn.Module, dict]:
    """Build the mlx-vlm model for the folder and load its weights lazily, without the LM head.

    Returns:
        the model (weights not yet evaluated) and the mlx-vlm config it was built from.

    Raises:
        FileNotFoundError: no safetensors in the folder.
    """
    import importlib

    from mlx_vlm.utils import load_model_weights, update_module_configs

    config = mlx_vlm_config(hf_config)
    module = importlib.import_module(f"mlx_vlm.models.{config['model_type']}")
    model_config = update_module_configs(module.ModelConfig.from_dict(config), module, config,
                                         ["text", "vision"])
    model = module.Model(model_config)
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {path}")
    weights: dict[str, mx.array] = {}
    for file in files:
        weights.update(mx.load(str(file)))
    if hf_config["model_type"] == "qwen2_vl":
        weights = _legacy_keys(weights)
    weights = model.vision_tower.sanitize(model.sanitize(weights))
    weights = {k: v for k, v in weights.items() if not k.startswith("language_model.lm_head.")}
    if "lm_head" in model.language_model:  # an embedder never projects to the vocabulary
        model.language_model.pop("lm_head")
    return load_model_weights(model, config, weights, Path(path), lazy=True), config


class MlxVlmEngine(VlmTokenization):
    """A Qwen2-VL / Qwen3-VL embedder on MLX behind the ``Engine`` interface (see the module docstring)."""

    def __init__(self, config: ModelConfig, path: str) -> None:
        if config.task != "embed":
            raise ValueError(f"{path} is a vision-language embedder: serve it with task = 'embed'")
        hf_config = read_hf_config(path)
        fmt = vlm_format(path, hf_config)
        self.setup_inputs(path, fmt)
        self.family = fmt.family
        self.model, mlx_config = load_vlm_model(path, hf_config)
        prequantized = mlx_config.get("quantization") is not None
        shipped_bits = mlx_config["quantization"]["bits"] if prequantized else None
        choice = resolve(config.quantize, prequantized_bits=shipped_bits, sizes=lambda: folder_weight_sizes(
            path, keep=is_vision_weight, drop=lambda name: "lm_head." in name))
        announce(config.name, choice)
        bits = choice.bits
        if bits is not None:
            quantize_model(self.model, bits, skip=lambda p: any(m in p for m in _VISION_MODULES))
        for _, weight in tree_flatten(self.model.parameters()):  # one at a time: a quantized load never
            mx.eval(weight)  # holds the whole full-precision model in memory
        self.model.eval()
        quantized = quantization_name(bits if bits is not None else shipped_bits)
        spec = vlm_spec(config, fmt, hf_config, engine="mlx", device=device_name(),
                        dtype=weights_dtype(self.model), quantization=quantized,
                        parameters=parameter_count(self.model))
        self.spec = dataclasses.replace(spec, quantization_reason=choice.reason)

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32 last-token states, before normalization."""
        ids, mask, pixels, grids = collate(batch, self._pad_id)
        ids, mask = mx.array(ids.astype(np.int32)), mx.array(mask.astype(np.int32))
        pixel_values = mx.array(np.concatenate(pixels)) if pixels else None
        grid = mx.array(grids) if grids is not None else None
        language = self.model.language_model
        language._rope_deltas = language._position_ids = None  # mlx-vlm caches these between calls
        if self.family == "qwen3_vl":
            pooled = self.model(ids, attention_mask=mask, pixel_values=pixel_values,
                                image_grid_thw=grid).text_embeds
        else:
            hidden = self._qwen2_vl_hidden(ids, mask, pixel_values, grid)
            pooled = hidden[mx.arange(len(batch)), mx.array(last_positions(batch).astype(np.int32))]
        result = pooled.astype(mx.float32)
        mx.eval(result)
        return np.array(result)

    def _qwen2_vl_hidden(self, ids: mx.array, mask: mx.array, pixel_values: mx.array | None,
                         grid: mx.array | None) -> mx.array:
        """Final hidden states ``(n, L, H)`` of Qwen2-VL: image features on their placeholders, 3D
        positions for image tokens; the decoder's causal mask makes right padding exact."""
        if pixel_values is None:
            return self.model.language_model.model(ids)
        features = self.model.get_input_embeddings(ids, pixel_values, image_grid_thw=grid, mask=mask)
        return self.model.language_model.model(ids, inputs_embeds=features.inputs_embeds,
                                               position_ids=features.position_ids)

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Embedders do not score pairs (``tokenize_pairs`` refuses them first)."""
        raise ValueError(f"model {self.spec.name!r} is an embedder and does not score pairs")
