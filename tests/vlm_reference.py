"""The model cards' reference pipelines for vision-language embedders, on transformers, for parity tests.

Each function follows its model repo's own script (Ops-MM-embedding-v1's ``ops_mm_embedding_v1.py``,
GME's ``gme_inference.py``, Qwen3-VL-Embedding's ``qwen3_vl_embedding.py``): the prompt it builds, the
image resize of its ``fetch_image`` (``qwen_vl_utils``), the transformers processor called on text and
images together, the ``*ForConditionalGeneration`` forward pass and its last-token pooling. It shares no
code with the gateway's engines. The processors are transformers' own; only their class check is relaxed,
because they insist on a video processor, which needs torchvision (not installed here).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import transformers
from PIL import Image

HELPFUL = "You are a helpful assistant."
IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"


class _Qwen2VLProcessor(transformers.Qwen2VLProcessor):
    def check_argument_for_proper_class(self, argument_name, argument):
        return type(argument)


class _Qwen3VLProcessor(transformers.Qwen3VLProcessor):
    def check_argument_for_proper_class(self, argument_name, argument):
        return type(argument)


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``qwen_vl_utils.smart_resize`` as the model repos' scripts copy it."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def fetch_image(image: Image.Image, factor: int, min_pixels: int, max_pixels: int) -> Image.Image:
    """The scripts' ``fetch_image`` for a PIL image: RGB, then resized by ``smart_resize``."""
    image = image.convert("RGB")
    height, width = smart_resize(image.height, image.width, factor, min_pixels, max_pixels)
    return image.resize((width, height))


class Reference:
    """One folder's reference embedder (fp32). ``layout``: ``ops-mm``, ``gme`` or ``qwen3-vl``."""

    def __init__(self, path: str, layout: str) -> None:
        self.layout = layout
        model_class = transformers.AutoModelForImageTextToText
        self.model = model_class.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        if layout == "qwen3-vl":
            image_processor = transformers.AutoImageProcessor.from_pretrained(path)
            tokenizer.padding_side = "right"
            self.processor = _Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                               chat_template=tokenizer.chat_template)
        else:
            pixels = {"ops-mm": (4, 1280), "gme": (256, 1280)}[layout]
            image_processor = transformers.AutoImageProcessor.from_pretrained(
                path, min_pixels=pixels[0] * 28 * 28, max_pixels=pixels[1] * 28 * 28)
            tokenizer.padding_side = "left" if layout == "ops-mm" else "right"
            self.processor = _Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)

    def prompt(self, text: str | None, images: list, instruction: str | None) -> str:
        """The script's prompt for one input."""
        if self.layout == "qwen3-vl":
            instruction = (instruction or "Represent the user's input.").strip()
            if instruction[-1] not in ".!?;:,":
                instruction += "."
            content = [{"type": "image", "image": image} for image in images]
            if text:
                content.append({"type": "text", "text": text})
            messages = [{"role": "system", "content": [{"type": "text", "text": instruction}]},
                        {"role": "user", "content": content}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        body = IMAGE_SLOT * len(images) + (text or "")
        return (f"<|im_start|>system\n{instruction or HELPFUL}<|im_end|>\n<|im_start|>user\n{body}"
                "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>")

    def images(self, images: list) -> list:
        """The images as the script's ``fetch_image`` resizes them."""
        bounds = {"ops-mm": (28, 256 * 784, 1280 * 784), "gme": (28, 4 * 784, 16384 * 784),
                  "qwen3-vl": (32, 4 * 1024, 1800 * 1024)}[self.layout]
        return [fetch_image(image, *bounds) for image in images]

    @torch.inference_mode()
    def embed(self, text: str | None, images: list | None = None,
              instruction: str | None = None) -> np.ndarray:
        """The last-token hidden state of one input, ``(dim,)`` float32, before L2 normalization."""
        images = self.images(images or [])
        options = {"do_resize": False} if self.layout == "qwen3-vl" else {}
        prompt = self.prompt(text, images, instruction)
        inputs = self.processor(text=[prompt], images=[images] if images else None, padding=True,
                                return_tensors="pt", **options)
        hidden = self.model(**inputs, output_hidden_states=True, return_dict=True).hidden_states[-1]
        return hidden[0, -1].float().numpy()
