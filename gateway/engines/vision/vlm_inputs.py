"""Inputs of vision-language embedders, shared by the torch and MLX engines: prompts, images and tokens.

``VlmTokenization`` is the tokenization half of the ``Engine`` interface for these models. Every input,
text-only included, becomes the model card's prompt (``vlm_formats``) around the input's text, with one
``<|image_pad|>`` per merged image patch; the whole prompt is tokenized at once, as the reference
processor does, so the ids equal the reference's. A text too long for the limit loses text tokens only
(the prompt frame and the images stay); images are never cut.

What an input costs (``Tokens``): ``ids`` hold the decoder's whole sequence (frame, text, and one
placeholder per *merged* patch: 2 x 2 vision patches become one decoder token). The vision tower runs on
the *unmerged* patches, four times as many, so ``image_tokens`` adds the patches not already in ``ids``
(3 per merged patch): ``len(tokens)`` = frame and text tokens + every vision patch. That is what the
runner's padded-token budget and the request limits count, so a batch of large images stays within the
budget the operator sized for memory; it is also the usage the request reports, where ``image_ids`` (the
placeholders in ``ids``) lets the images count as every patch and the text as its own tokens.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer

from gateway.engines import InputTooLong, ModelSpec, Tokens
from gateway.engines.text.tokenization import HFTokenization
from gateway.engines.text.windows import WINDOW_CHARS_PER_TOKEN, char_window
from gateway.engines.vision.vlm_batch import VlmImages
from gateway.engines.vision.vlm_formats import (
    IMAGE_TOKEN,
    VISION_TOKENS,
    VlmFormat,
    chat_messages,
    fixed_prompt,
)
from gateway.errors import UnprocessableInput
from gateway.inputs import InputItem, TextPart

_SENTINEL = "\x00gateway-text\x00"  # stands for the input's text while rendering a chat template
PROMPT_CACHE_SIZE = 256  # rendered prompt frames kept per model


def load_chat_template(path: str | Path, tokenizer) -> str | None:
    """The folder's chat template: the tokenizer's, else the processor's ``chat_template.json``."""
    if tokenizer.chat_template:
        return tokenizer.chat_template
    file = Path(path) / "chat_template.json"
    return json.loads(file.read_text(encoding="utf-8")).get("chat_template") if file.is_file() else None


class VlmTokenization(HFTokenization):
    """Prompts, images and tokens of a vision-language embedder (see the module docstring).

    Subclasses call ``setup_inputs`` before building ``spec``, and may override ``store_pixels``.
    """

    format: VlmFormat
    spec: ModelSpec

    def setup_inputs(self, path: str, fmt: VlmFormat) -> None:
        """Load the folder's tokenizer, image processor (with the format's pixel bounds) and template.

        Raises:
            ValueError: a chat-template format whose folder has no chat template.
        """
        self.format = fmt
        self._prompts: dict[tuple[str, int, bool], tuple[str, str]] = {}
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        bounds = fmt.bounds
        kwargs = {}
        if bounds.processor_min_pixels is not None:
            kwargs = {"min_pixels": bounds.processor_min_pixels, "max_pixels": bounds.processor_max_pixels}
        self.image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True, **kwargs)
        self.merge = int(self.image_processor.merge_size) ** 2  # vision patches per decoder token
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self._vision_ids = {self.tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS}
        self.chat_template = load_chat_template(path, self.tokenizer) if fmt.chat_template else None
        if fmt.chat_template and not self.chat_template:
            raise ValueError(f"{path} has no chat template, which the {fmt.layout} prompt format needs")

    def store_pixels(self, pixel_values: np.ndarray) -> Any:
        """Convert ``(patches, dim)`` float32 patches to what ``embed`` consumes (default: as they are)."""
        return pixel_values

    # -- Engine interface ------------------------------------------------------------------------

    def tokenize(
        self,
        texts: list[str],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
    ) -> list[Tokens]:
        """See ``Engine.tokenize``: each text in the model's prompt with the default instruction."""
        items = [InputItem.of_text(text) for text in texts]
        return self.encode_items(items, truncate=truncate, max_tokens=max_tokens,
                                 truncation_side=truncation_side)

    def tokens_from_ids(self, ids: list[list[int]], **options) -> list[Tokens]:
        """See ``Engine.tokens_from_ids``; ids of the vision tokens are refused (they need images).

        Raises:
            UnprocessableInput: an id outside the vocabulary or one of the vision tokens.
        """
        if any(i in self._vision_ids for row in ids for i in row):
            raise UnprocessableInput("the vision tokens (<|image_pad|>, <|vision_start|>...) need an image "
                                     "input")
        return super().tokens_from_ids(ids, **options)

    def tokenize_pairs(self, pairs: list[tuple[str, str]], *, truncate: bool = True) -> list[Tokens]:
        """Vision-language embedders are bi-encoders: they rerank by cosine, never score pairs."""
        raise ValueError(f"model {self.spec.name!r} is an embedder and does not score pairs")

    def encode_items(
        self,
        items: list[InputItem],
        *,
        truncate: bool = True,
        max_tokens: int | None = None,
        truncation_side: Literal["right", "left"] = "right",
        prompt: str | None = None,
    ) -> list[Tokens]:
        """See ``Engine.encode_items``: ``prompt`` is the system instruction (None: the model's default).

        Raises:
            InputTooLong: an input is too long and ``truncate`` is False, or its images alone pass the limit.
            UnprocessableInput: an image outside the processor's limits (aspect ratio over 200), or a
                text holding one of the vision tokens.
        """
        instruction = self.format.instruction(prompt)
        out = []
        for index, item in enumerate(items):
            text = " ".join(part.text for part in item.parts if isinstance(part, TextPart))
            if any(token in text for token in VISION_TOKENS):
                raise UnprocessableInput(f"input {index}: the text holds a token reserved for images "
                                 f"({', '.join(VISION_TOKENS)})")
            images = [self.prepare_image(part.image, index) for part in item.images]
            out.append(self._encode(index, instruction, text, images, truncate, max_tokens, truncation_side))
        return out

    # -- inputs ----------------------------------------------------------------------------------

    def prepare_image(self, image: Image.Image, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Resize as the reference's ``fetch_image`` does, then run the image processor.

        Returns:
            ``(patches, dim)`` float32 patch rows and the ``(3,)`` int64 grid.

        Raises:
            UnprocessableInput: an aspect ratio over 200, which the processor refuses.
        """
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        bounds = self.format.bounds
        try:
            height, width = smart_resize(image.height, image.width, bounds.factor, bounds.min_pixels,
                                         bounds.max_pixels)
        except ValueError as exc:  # smart_resize's refusal of the image's shape: the input's fault
            raise UnprocessableInput(f"input {index}: the image cannot be embedded: {exc}") from None
        image = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        resize = {"do_resize": False} if bounds.processor_min_pixels is None else {}
        features = self.image_processor(images=[image], return_tensors="np", **resize)
        return features["pixel_values"].astype(np.float32, copy=False), features["image_grid_thw"][0]

    def prompt_text(self, instruction: str, image_slots: int, has_text: bool) -> tuple[str, str]:
        """The prompt before and after the input's text, one ``<|image_pad|>`` per image (cached: the
        instructions are the model's and the config's few, and a chat template render costs ~0.05 ms).

        Raises:
            RuntimeError: the chat template does not place the images ahead of the text, once each.
        """
        key = (instruction, image_slots, has_text)
        if (cached := self._prompts.get(key)) is None:
            cached = self._render(instruction, image_slots, has_text)
            if len(self._prompts) < PROMPT_CACHE_SIZE:
                self._prompts[key] = cached
        return cached

    def _render(self, instruction: str, image_slots: int, has_text: bool) -> tuple[str, str]:
        if not self.format.chat_template:
            return fixed_prompt(instruction, image_slots, "")
        messages = chat_messages(instruction, image_slots, _SENTINEL if has_text else "")
        rendered = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )
        before, after = rendered.split(_SENTINEL) if has_text else (rendered, "")
        if before.count(IMAGE_TOKEN) != image_slots or IMAGE_TOKEN in after:
            raise RuntimeError("the chat template does not render one image slot per image before the text")
        return before, after

    def _encode(self, index: int, instruction: str, text: str, images: list, truncate: bool,
                max_tokens: int | None, side: str) -> Tokens:
        """Tokenize one input's whole prompt, cut its text to the limit, attach its images."""
        before, after = self.prompt_text(instruction, len(images), bool(text))
        # only the text's window at the kept side is tokenized (tokenization.encode says why)
        text = char_window(text, self.spec.max_tokens * WINDOW_CHARS_PER_TOKEN, side)
        merged = [int(np.prod(grid)) // self.merge for _, grid in images]
        pieces = before.split(IMAGE_TOKEN)
        counts = [*merged, 0]
        before = "".join(piece + IMAGE_TOKEN * count for piece, count in zip(pieces, counts, strict=True))
        enc = self.tokenizer(before + text + after, add_special_tokens=True, return_offsets_mapping=True,
                             verbose=False)
        ids, starts = enc["input_ids"], [start for start, _ in enc["offset_mapping"]]
        first = bisect_left(starts, len(before))  # the text's tokens: those starting inside it
        last = bisect_left(starts, len(before) + len(text), lo=first)
        tokens = self._fit(index, ids, first, last, truncate, max_tokens, side)
        if images:
            patches = sum(int(np.prod(grid)) for _, grid in images)
            tokens.images = VlmImages(self.store_pixels(np.concatenate([p for p, _ in images])),
                                      np.stack([grid for _, grid in images]).astype(np.int64))
            tokens.image_tokens = patches - sum(merged)
            tokens.image_ids = sum(merged)  # so the images cost every patch, and the text its own tokens
        return tokens

    def _fit(self, index: int, ids: list[int], first: int, last: int, truncate: bool,
             max_tokens: int | None, side: str) -> Tokens:
        """``ids`` (text tokens at ``first:last``) cut to the limit by dropping text tokens only.

        Raises:
            InputTooLong: too long and ``truncate`` is False, or the frame and images pass the model's limit.
        """
        frame = len(ids) - (last - first)
        floor = frame + (1 if last > first else 0)  # a request's max_tokens keeps one text token
        if floor > self.spec.max_tokens:
            raise InputTooLong(index, len(ids), self.spec.max_tokens)
        limit = max(min(max_tokens or self.spec.max_tokens, self.spec.max_tokens), floor)
        if len(ids) <= limit:
            return Tokens(ids)
        if not truncate:
            raise InputTooLong(index, len(ids), limit)
        keep = limit - frame
        text = ids[first:last]
        kept = text[:keep] if side == "right" else text[len(text) - keep:]
        return Tokens(ids[:first] + kept + ids[last:], truncated=True)
