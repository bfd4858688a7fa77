"""CLIP / SigLIP dual encoders (a text tower and an image tower into one vector space): which folders they
are, what they take, and which engine serves them. Imports neither torch nor mlx.

A model's modalities are detected from its folder's ``config.json`` (a CLIP or SigLIP ``model_type``) and
may be narrowed by ``ModelConfig.modalities`` (``["text"]``: refuse images); asking for images from a
model without an image tower fails at start-up.

SigLIP's text tower pools the last position, which is padding for short texts: it was trained with every
text padded to its maximum length (the model card: ``padding="max_length"``), so its texts are always
padded that way (which also makes a text's vector independent of its batch). CLIP pools its end-of-text
token under a causal mask, so ordinary right padding is exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gateway.engines import InputTooLong, ModelSpec, Tokens
from gateway.errors import UnprocessableInput
from gateway.inputs import InputItem

DUAL_ENCODER_TYPES = {"clip": "CLIP", "siglip": "SigLIP"}  # model_type -> family name
MLX_DUAL_ENCODER_TYPES = {"siglip"}  # mlx-embeddings implements SigLIP, not CLIP
FIXED_LENGTH_TEXT_TYPES = {"siglip"}  # text towers trained on max-length padding
CLASS_TOKEN_TYPES = {"clip"}  # vision towers with a class token ahead of the patches


def read_hf_config(path: str | Path) -> dict:
    """The folder's transformers ``config.json`` as a dict ({} when it has none)."""
    file = Path(path) / "config.json"
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def is_dual_encoder(hf_config: dict) -> bool:
    """Whether ``config.json`` describes a CLIP / SigLIP dual encoder."""
    return hf_config.get("model_type") in DUAL_ENCODER_TYPES


def mlx_refusal(hf_config: dict) -> str | None:
    """Why the MLX engine cannot serve this folder (a dual encoder mlx-embeddings lacks), else None."""
    model_type = hf_config.get("model_type")
    if model_type in DUAL_ENCODER_TYPES and model_type not in MLX_DUAL_ENCODER_TYPES:
        return (f"{DUAL_ENCODER_TYPES[model_type]} (model_type {model_type!r}) has no MLX implementation in "
                "mlx-embeddings; serve it with engine = 'torch' (engine = 'auto' picks torch for it)")
    return None


def pads_to_max_length(hf_config: dict, text_kwargs: dict | None = None) -> bool:
    """Whether texts are padded to the maximum length: SigLIP, or a sentence-transformers pipeline whose
    ``processing_kwargs.text.padding`` is ``max_length``."""
    return hf_config.get("model_type") in FIXED_LENGTH_TEXT_TYPES or \
        (text_kwargs or {}).get("padding") == "max_length"


def vision_tokens(hf_config: dict) -> int:
    """Sequence length of the vision tower for one image (patches, plus CLIP's class token): the image's
    cost in tokens (``Tokens.image_tokens``)."""
    vision = hf_config.get("vision_config") or {}
    patches = (int(vision.get("image_size", 224)) // int(vision.get("patch_size", 16))) ** 2
    return patches + (1 if hf_config.get("model_type") in CLASS_TOKEN_TYPES else 0)


def apply_modalities(spec: ModelSpec, requested: list[str] | None, path: str) -> None:
    """Narrow ``spec.modalities`` to the config's ``modalities`` (None: keep what the engine detected).

    Raises:
        ValueError: ``requested`` lacks ``text``, or asks for a modality the model does not have.
    """
    if requested is None:
        return
    if "text" not in requested:
        raise ValueError(f"model {spec.name!r}: 'modalities' must include 'text' (every model embeds text)")
    missing = [m for m in requested if m not in spec.modalities]
    if missing:
        raise ValueError(f"model {spec.name!r}: 'modalities' asks for {', '.join(missing)}, but {path} takes "
                         f"only {', '.join(spec.modalities)} (no image tower or vision-language backbone)")
    spec.modalities = tuple(dict.fromkeys(requested))


class DualEncoderInputs:
    """``encode_items`` and text padding shared by the torch and MLX dual-encoder engines.

    Subclasses (which also derive from ``HFTokenization``) set ``spec``, ``_image_tokens`` (see
    ``vision_tokens``), ``_fixed_width`` (the padded text width, or None for the batch's longest),
    ``_pad_id`` and ``_send_mask`` (whether the tokenizer makes an attention mask), and implement
    ``preprocess_images``.
    """

    spec: ModelSpec
    _image_tokens: int
    _fixed_width: int | None
    _pad_id: int
    _send_mask: bool

    def preprocess_images(self, images: list[Any]) -> Sequence[Any]:
        """Decoded PIL images -> one ``(3, H, W)`` float32 pixel array per image, as the model's own image
        processor makes them."""
        raise NotImplementedError

    def encode_items(
        self,
        items: list[InputItem],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
        prompt: str | None = None,
    ) -> list[Tokens]:
        """See ``Engine.encode_items``: texts (``prompt`` prepended) as token ids, images as pixel arrays in
        ``Tokens.images``, each costing ``vision_tokens``.

        Raises:
            InputTooLong: a text is too long and ``truncate`` is False (index into ``items``).
            UnprocessableInput: an input of several parts (dual encoders do not fuse).
        """
        check_single_parts(items, self.spec.name)
        out: list[Tokens | None] = [None] * len(items)
        text_at = [i for i, item in enumerate(items) if not item.images]
        if text_at:
            texts = [(prompt or "") + items[i].text for i in text_at]
            try:
                tokens = self.tokenize(texts, truncate=truncate, max_tokens=max_tokens,
                                       truncation_side=truncation_side)
            except InputTooLong as exc:
                raise InputTooLong(text_at[exc.index], exc.length, exc.limit, exc.at_least) from None
            for i, row in zip(text_at, tokens, strict=True):
                out[i] = row
        image_at = [i for i, item in enumerate(items) if item.images]
        if image_at:
            pixels = self.preprocess_images([items[i].images[0].image for i in image_at])
            for i, row in zip(image_at, pixels, strict=True):
                out[i] = Tokens([], images=row, image_tokens=self._image_tokens)
        return out

    def text_arrays(self, batch: list[Tokens]) -> tuple[np.ndarray, np.ndarray | None]:
        """Right-padded ids ``(n, width)`` int64 (width: ``_fixed_width`` or the longest) and the 0/1 mask
        the tokenizer would give (None when it gives none)."""
        width = self._fixed_width or max(len(t.ids) for t in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens.ids)], mask[row, : len(tokens.ids)] = tokens.ids, 1
        return ids, mask if self._send_mask else None


def split_by_modality(batch: list[Tokens]) -> tuple[list[int], list[int]]:
    """Positions of the text inputs and of the image inputs of a batch."""
    images = [i for i, tokens in enumerate(batch) if tokens.images is not None]
    taken = set(images)
    return [i for i in range(len(batch)) if i not in taken], images


def check_single_parts(items: list[InputItem], model: str) -> None:
    """Raises UnprocessableInput for an input of several parts; RuntimeError for an image part that was
    not decoded (the serving layer decodes every image first: a bug, not the client's fault)."""
    for index, item in enumerate(items):
        if not item.is_single_part:
            raise UnprocessableInput(f"input {index} holds {len(item.parts)} parts, but model {model!r} "
                                     "embeds one text or one image per input (it does not fuse parts into "
                                     "one vector)")
        if item.images and item.images[0].image is None:
            raise RuntimeError(f"input {index}: the image was not decoded")
