"""Torch engine for vision-language embedders (Ops-MM-embedding-v1, GME, Qwen3-VL-Embedding) on transformers.

The backbone is transformers' own ``Qwen2VLModel`` / ``Qwen3VLModel`` (``AutoModel``: the vision tower and
the decoder, without the LM head, which an embedder never uses), loaded in the dtype the config or the
device picks (``precision.resolve_torch_dtype``). A forward pass embeds a batch that mixes text-only,
image-only and fused inputs: ids are right-padded (exact, the attention being causal), every image's
patches go through the vision tower at once and land on their ``<|image_pad|>`` placeholders, and each
input's vector is the final hidden state of its last token (the references' last-token pooling), as
float32. L2 normalization is left to the service, as for every engine (``ModelSpec.normalize``).
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import Engine, Tokens
from gateway.engines.torch.precision import resolve_torch_dtype
from gateway.engines.vision.dual_encoders import read_hf_config
from gateway.engines.vision.vlm_batch import collate, last_positions
from gateway.engines.vision.vlm_formats import vlm_format, vlm_spec
from gateway.engines.vision.vlm_inputs import VlmTokenization


def load_backbone(path: str, dtype: torch.dtype) -> torch.nn.Module:
    """The folder's ``Qwen2VLModel`` / ``Qwen3VLModel``: vision tower and decoder, without the LM head.

    It is loaded through the whole ``*ForConditionalGeneration`` class, whose weight-name mappings read
    every folder layout (transformers 4's ``model.layers`` / ``visual``, and 5's ``model.language_model``
    / ``model.visual``; the bare backbone class misplaces the latter's vision weights), then the LM head
    is dropped. A folder missing any backbone weight is refused rather than served half random.

    Raises:
        ValueError: backbone weights are missing from the folder.
    """
    from transformers import AutoModelForImageTextToText

    full, info = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, local_files_only=True,
                                                             output_loading_info=True)
    missing = [key for key in info["missing_keys"] if not key.startswith("lm_head.")]
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} weights of the model, e.g. {missing[0]}")
    return full.model


class TorchVlmEngine(VlmTokenization):
    """A Qwen2-VL / Qwen3-VL embedder behind the ``Engine`` interface (see the module docstring)."""

    lanes = 1  # one pass at a time: these passes are large matrix products that use every core

    def __init__(self, config: ModelConfig, path: str, device: str) -> None:
        if config.task != "embed":
            raise ValueError(f"{path} is a vision-language embedder: serve it with task = 'embed'")
        hf_config = read_hf_config(path)
        fmt = vlm_format(path, hf_config)
        self.setup_inputs(path, fmt)
        dtype = resolve_torch_dtype(config.dtype, device)
        self.model = load_backbone(path, getattr(torch, dtype)).to(device).eval()
        self._device = torch.device(device)
        self._dtype = getattr(torch, dtype)
        self.spec = vlm_spec(config, fmt, hf_config, engine="torch", device=device, dtype=dtype,
                             parameters=sum(p.numel() for p in self.model.parameters()))

    def store_pixels(self, pixel_values: np.ndarray) -> torch.Tensor:
        """Patches in the vision tower's dtype, on CPU (the vision tower casts them to it first anyway)."""
        return torch.from_numpy(pixel_values).to(self._dtype)

    @torch.inference_mode()
    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32 last-token states, before normalization."""
        ids, mask, pixels, grids = collate(batch, self._pad_id)
        inputs = {
            "input_ids": torch.from_numpy(ids).to(self._device),
            "attention_mask": torch.from_numpy(mask).to(self._device),
            "mm_token_type_ids": torch.from_numpy((ids == self.image_token_id).astype(np.int64)).to(
                self._device),
        }
        if pixels:
            inputs["pixel_values"] = torch.cat(pixels).to(self._device)
            inputs["image_grid_thw"] = torch.from_numpy(grids).to(self._device)
        hidden = self.model(**inputs, use_cache=False).last_hidden_state
        last = torch.from_numpy(last_positions(batch)).to(self._device)
        return hidden[torch.arange(len(batch), device=self._device), last].float().cpu().numpy()

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Embedders do not score pairs (``tokenize_pairs`` refuses them first)."""
        raise ValueError(f"model {self.spec.name!r} is an embedder and does not score pairs")


def load_torch_vlm_engine(config: ModelConfig, path: str, device: str) -> Engine:
    """Load the vision-language embedder at ``path`` on torch ``device`` (``TorchVlmEngine``).

    Raises:
        ValueError: a task other than ``embed``, an unknown backbone, or a dtype the device cannot run.
    """
    return TorchVlmEngine(config, path, device)
