"""Torch engine for CLIP / SigLIP dual encoders, on sentence-transformers' multimodal ``Transformer`` module.

The module's own pipeline runs each forward pass (``get_text_features`` / ``get_image_features`` and any
module after it), fed with token ids we produce for texts and with the pixel arrays its own ``preprocess``
makes from decoded PIL images; so text and image vectors equal ``SentenceTransformer.encode``'s. Raw
strings never reach sentence-transformers: it treats a string that looks like an image URL or path as an
image and opens it, so texts go in as token ids and images as already-decoded PIL images.

A batch may mix texts and images: the library runs one modality per call, so the batch is split by
modality and the rows are returned in batch order. Weights load in the dtype the config or the device
picks (``precision.resolve_torch_dtype``); vectors are float32.
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import ModelSpec, Tokens
from gateway.engines.torch.engine import TorchEngine, lanes_for, pick_device
from gateway.engines.torch.precision import resolve_torch_dtype
from gateway.engines.vision.dual_encoders import (
    DualEncoderInputs,
    pads_to_max_length,
    read_hf_config,
    split_by_modality,
    vision_tokens,
)


class TorchDualEncoderEngine(DualEncoderInputs, TorchEngine):
    """A CLIP / SigLIP sentence-transformers model behind the ``Engine`` interface (module docstring)."""

    def __init__(self, config: ModelConfig, path: str, lanes: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        if config.task != "embed":
            raise ValueError(f"{path} is a CLIP/SigLIP dual encoder: serve it with task = 'embed'")
        device = pick_device(config.device)
        dtype = resolve_torch_dtype(config.dtype, device)
        self.model = SentenceTransformer(path, device=device, local_files_only=True,
                                         model_kwargs={"dtype": getattr(torch, dtype)})
        self.model.eval()
        self.module = self.model[0]  # the multimodal Transformer module
        if "image" not in getattr(self.module, "modalities", ()):
            raise ValueError(f"{path}: its sentence-transformers module takes no images")
        self.tokenizer = self.model.tokenizer
        hf_config = read_hf_config(path)
        model_limit = self.model.max_seq_length or self.tokenizer.model_max_length
        text_kwargs = (getattr(self.module, "processing_kwargs", None) or {}).get("text")
        self._fixed_width = model_limit if pads_to_max_length(hf_config, text_kwargs) else None
        self._send_mask = "attention_mask" in self.tokenizer.model_input_names
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._image_tokens = vision_tokens(hf_config)
        self._device, self._dtype = torch.device(device), getattr(torch, dtype)
        self._cores = torch.get_num_threads()
        self.lanes = lanes_for(device, self._cores, lanes)
        modules = list(self.model)
        ends_normalized = type(modules[-1]).__name__ == "Normalize"
        self._raw_pipeline = modules[:-1] if ends_normalized else modules
        self.spec = ModelSpec(
            name=config.name, task="embed", max_tokens=min(config.max_tokens or model_limit, model_limit),
            dim=int(self.model.get_embedding_dimension()), engine="torch", device=device,
            normalize=ends_normalized if config.normalize is None else config.normalize,
            prompts={k: v for k, v in (getattr(self.model, "prompts", None) or {}).items() if v},
            dtype=dtype, modalities=("text", "image"), fuses=False,
            architecture=str(hf_config.get("model_type", "")),
            parameters=sum(p.numel() for p in self.model.parameters()),
        )

    def preprocess_images(self, images: list) -> torch.Tensor:
        """The module's own ``preprocess`` on decoded PIL images: ``(k, 3, H, W)`` float32 pixels."""
        return self.module.preprocess(images)["pixel_values"]

    @torch.inference_mode()
    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32 in batch order, texts and images run apart."""
        out = np.empty((len(batch), self.spec.dim), dtype=np.float32)
        text_rows, image_rows = split_by_modality(batch)
        if text_rows:
            ids, mask = self.text_arrays([batch[i] for i in text_rows])
            features = {"input_ids": torch.from_numpy(ids).to(self._device), "modality": "text"}
            if mask is not None:
                features["attention_mask"] = torch.from_numpy(mask).to(self._device)
            out[text_rows] = self._run(features)
        if image_rows:
            pixels = torch.stack([batch[i].images for i in image_rows]).to(self._device, self._dtype)
            out[image_rows] = self._run({"pixel_values": pixels, "modality": "image"})
        return out

    def _run(self, features: dict) -> np.ndarray:
        for module in self._raw_pipeline:  # SentenceTransformer.forward, minus a final Normalize
            features = module(features)
        return features["sentence_embedding"].float().cpu().numpy()

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Dual encoders rerank by cosine; they never score pairs."""
        raise ValueError(f"model {self.spec.name!r} is an embedder and does not score pairs")
