"""MLX engine for SigLIP dual encoders, on mlx-embeddings' SigLIP (``mlx_embeddings.models.siglip``).

mlx-embeddings' own loader reads the weights (and their Hugging Face names); only its config step is
wrapped: it builds the text and vision configs from every key of ``config.json`` (which its dataclasses
refuse) and, for SigLIP, reads the image and patch sizes from the *repository name*
(``...patch16-224``), which a local folder does not have. ``siglip_args`` builds them from the folder's
own config instead. Texts are tokenized by the folder's tokenizer and padded as the torch engine pads
them (``dual_encoders``); images go through the folder's own image processor. Rows come back in batch
order, texts and images run apart, evaluated here into float32 numpy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from transformers import AutoImageProcessor, AutoTokenizer

from gateway.config import ModelConfig
from gateway.engines import ModelSpec, Tokens
from gateway.engines.mlx.folder import read_folder
from gateway.engines.mlx.weights import parameter_count
from gateway.engines.text.tokenization import HFTokenization
from gateway.engines.vision.dual_encoders import (
    DualEncoderInputs,
    pads_to_max_length,
    read_hf_config,
    split_by_modality,
    vision_tokens,
)


def _known_fields(cls: type, values: dict) -> object:
    """``cls(**values)`` keeping only the dataclass's own fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def load_siglip(path: str | Path) -> nn.Module:
    """mlx-embeddings' SigLIP ``Model`` with the folder's weights (see the module docstring)."""
    from mlx_embeddings.models import siglip
    from mlx_embeddings.utils import load_model

    class FolderArgs(siglip.ModelArgs):
        @classmethod
        def from_dict(cls, params: dict) -> siglip.ModelArgs:
            args = siglip.ModelArgs.from_dict(params)
            args.text_config = _known_fields(siglip.TextConfig, params.get("text_config") or {})
            args.vision_config = _known_fields(siglip.VisionConfig, params.get("vision_config") or {})
            return args

    # no text/vision config classes returned: the loader's own (name-based) config step is skipped
    return load_model(Path(path), get_model_classes=lambda config: (siglip.Model, FolderArgs, None, None))


class MlxSiglipEngine(DualEncoderInputs, HFTokenization):
    """A SigLIP folder on MLX behind the ``Engine`` interface (see the module docstring)."""

    def __init__(self, config: ModelConfig, path: str, device: str) -> None:
        if config.task != "embed":
            raise ValueError(f"{path} is a SigLIP dual encoder: serve it with task = 'embed'")
        hf_config = read_hf_config(path)
        folder = read_folder(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        self.model = load_siglip(path)
        text_config = hf_config.get("text_config") or {}
        model_limit = min(folder.max_seq_length or self.tokenizer.model_max_length,
                          int(text_config.get("max_position_embeddings", 64)))
        self._fixed_width = model_limit if pads_to_max_length(hf_config) else None
        self._send_mask = "attention_mask" in self.tokenizer.model_input_names
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._image_tokens = vision_tokens(hf_config)
        hidden = int(text_config.get("hidden_size", 768))
        self.spec = ModelSpec(
            name=config.name, task="embed", max_tokens=min(config.max_tokens or model_limit, model_limit),
            dim=int(text_config.get("projection_size") or hidden), engine="mlx", device=device,
            normalize=bool(folder.normalize) if config.normalize is None else config.normalize,
            prompts=folder.prompts, dtype=str(self.model.logit_scale.dtype).removeprefix("mlx.core."),
            modalities=("text", "image"), fuses=False,
            architecture=str(hf_config.get("model_type", "")), parameters=parameter_count(self.model),
        )

    def preprocess_images(self, images: list) -> np.ndarray:
        """The folder's image processor on decoded PIL images: ``(k, 3, H, W)`` float32 pixels."""
        return self.image_processor(images=images, return_tensors="np")["pixel_values"]

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32 in batch order, texts and images run apart."""
        out = np.empty((len(batch), self.spec.dim), dtype=np.float32)
        text_rows, image_rows = split_by_modality(batch)
        if text_rows:
            ids, mask = self.text_arrays([batch[i] for i in text_rows])
            bool_mask = None if mask is None else mx.array(mask.astype(bool))  # True: attend
            out[text_rows] = _numpy(self.model.get_text_features(mx.array(ids.astype(np.int32)),
                                                                  attention_mask=bool_mask))
        if image_rows:
            pixels = np.stack([np.asarray(batch[i].images, dtype=np.float32) for i in image_rows])
            out[image_rows] = _numpy(self.model.get_image_features(mx.array(pixels)))
        return out

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Dual encoders rerank by cosine; they never score pairs."""
        raise ValueError(f"model {self.spec.name!r} is an embedder and does not score pairs")


def _numpy(result: mx.array) -> np.ndarray:
    """Evaluate here (no lazy graph leaves the engine) into float32 numpy."""
    mx.eval(result)
    return np.array(result.astype(mx.float32))
