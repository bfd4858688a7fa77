"""Vision-language embedders (Qwen2-VL / Qwen3-VL backbones, last-token pooling): which folders they are,
and the prompt format of each model family, as its model card's reference code applies it.

Three layouts are known:

- ``ops-mm`` (OpenSearch-AI/Ops-MM-embedding-v1, the folder ships ``ops_mm_embedding_v1.py``) and ``gme``
  (Alibaba-NLP/gme-Qwen2-VL, ``gme_inference.py``): a Qwen2-VL backbone and the prompt
  ``<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{images}{text}<|im_end|>\\n
  <|im_start|>assistant\\n<|endoftext|>``, images first, default instruction "You are a helpful
  assistant.", the state of the final ``<|endoftext|>`` pooled. Any other Qwen2-VL folder served with
  ``task = "embed"`` uses the ``ops-mm`` format.
- ``qwen3-vl`` (Qwen/Qwen3-VL-Embedding): the folder's own chat template applied to a system message
  (the instruction, default "Represent the user's input.", ending in punctuation) and a user message
  (images, then text), with the generation prompt; the last token pooled.

Images are resized the way each reference does before its processor sees them (``qwen_vl_utils``'s
``fetch_image``: ``smart_resize`` to a multiple of the patch grid within a pixel range), then the
processor's own pixel bounds apply; ``ImageBounds`` holds both.

This module imports neither torch nor mlx: both engines and the loaders' dispatch use it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from gateway.config import ModelConfig
from gateway.engines import ModelSpec

# model_type -> family; the engines serve these backbones
FAMILIES = {"qwen2_vl": "qwen2_vl", "qwen3_vl": "qwen3_vl"}
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
IMAGE_TOKEN = "<|image_pad|>"
IMAGE_SLOT = "<|vision_start|><|image_pad|><|vision_end|>"  # one per image, expanded to its patch count


@dataclass(frozen=True, slots=True)
class ImageBounds:
    """Pixel limits applied to an image before it becomes patches.

    Attributes:
        factor: side multiple of the pre-resize (patch size x merge size: 28 for Qwen2-VL, 32 for Qwen3-VL).
        min_pixels / max_pixels: pixel range of the reference's pre-resize (``fetch_image``).
        processor_min_pixels / processor_max_pixels: the image processor's own range (it resizes
            again into it); None: the processor does not resize (Qwen3-VL-Embedding: ``do_resize=False``).
    """

    factor: int
    min_pixels: int
    max_pixels: int
    processor_min_pixels: int | None
    processor_max_pixels: int | None


@dataclass(frozen=True, slots=True)
class VlmFormat:
    """How one family of vision-language embedders turns an input into a prompt.

    Attributes:
        layout: ``ops-mm``, ``gme`` or ``qwen3-vl``.
        family: the backbone, ``qwen2_vl`` or ``qwen3_vl``.
        default_instruction: the system instruction of documents and of inputs without a prompt.
        query_instruction: the instruction of queries when the config gives none.
        max_tokens: the reference's length limit in tokens (None: the model's positions).
        bounds: image size limits.
        chat_template: whether the prompt comes from the folder's chat template (else the fixed format).
        punctuate: whether an instruction gets a final ``.`` when it ends without punctuation.
    """

    layout: str
    family: str
    default_instruction: str
    query_instruction: str
    max_tokens: int | None
    bounds: ImageBounds
    chat_template: bool = False
    punctuate: bool = False

    def instruction(self, prompt: str | None) -> str:
        """The system instruction for a request's prompt (None or blank: the default instruction)."""
        text = (prompt or "").strip() or self.default_instruction
        if self.punctuate and not unicodedata.category(text[-1]).startswith("P"):
            text += "."
        return text


_QWEN2_PATCH = 28  # 14-pixel patches, 2 x 2 merge
_QWEN3_PATCH = 32  # 16-pixel patches, 2 x 2 merge
_HELPFUL = "You are a helpful assistant."

FORMATS = {
    # ops_mm_embedding_v1.py: fetch_image(min 256, max 1280 merged patches), processor min 4, max 1280
    "ops-mm": VlmFormat(
        "ops-mm", "qwen2_vl", _HELPFUL, _HELPFUL, None,
        ImageBounds(_QWEN2_PATCH, 256 * 28 * 28, 1280 * 28 * 28, 4 * 28 * 28, 1280 * 28 * 28),
    ),
    # gme_inference.py: fetch_image(min 4, max 16384), processor min 256, max 1280; max_length 1800
    "gme": VlmFormat(
        "gme", "qwen2_vl", _HELPFUL, _HELPFUL, 1800,
        ImageBounds(_QWEN2_PATCH, 4 * 28 * 28, 16384 * 28 * 28, 256 * 28 * 28, 1280 * 28 * 28),
    ),
    # Qwen3-VL-Embedding's qwen3_vl_embedding.py: MAX_LENGTH 8192, min 4, max 1800 merged 32-pixel patches
    "qwen3-vl": VlmFormat(
        "qwen3-vl", "qwen3_vl", "Represent the user's input.",
        "Retrieve images or text relevant to the user's query.", 8192,
        ImageBounds(_QWEN3_PATCH, 4 * 32 * 32, 1800 * 32 * 32, None, None),
        chat_template=True, punctuate=True,
    ),
}
# reference scripts the model repos ship, which tell the Qwen2-VL layouts apart
_LAYOUT_SCRIPTS = {"gme_inference.py": "gme", "ops_mm_embedding_v1.py": "ops-mm"}


def is_vision_language(hf_config: dict) -> bool:
    """Whether a transformers ``config.json`` (as a dict) is a Qwen2-VL or Qwen3-VL backbone, which the
    vision-language engines serve as embedders (text, images, or both fused into one vector)."""
    return hf_config.get("model_type") in FAMILIES


def vlm_format(path: str | Path, hf_config: dict) -> VlmFormat:
    """The prompt format of the vision-language folder at ``path``.

    Raises:
        ValueError: ``hf_config`` is not a vision-language backbone this module knows.
    """
    family = FAMILIES.get(hf_config.get("model_type", ""))
    if family is None:
        raise ValueError(f"{hf_config.get('model_type')!r} is not a vision-language embedder backbone")
    if family == "qwen3_vl":
        return FORMATS["qwen3-vl"]
    layout = next((name for script, name in _LAYOUT_SCRIPTS.items() if (Path(path) / script).is_file()),
                  "ops-mm")
    return FORMATS[layout]


def fixed_prompt(instruction: str, image_slots: int, text: str) -> tuple[str, str]:
    """The Ops-MM / GME prompt around ``text``, as (before, after): ``before + text + after`` is the whole
    prompt, with one ``IMAGE_SLOT`` per image ahead of the text."""
    before = f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{IMAGE_SLOT * image_slots}"
    return before, "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"


def chat_messages(instruction: str, image_slots: int, text: str) -> list[dict]:
    """Qwen3-VL-Embedding's conversation for one input: the instruction as the system message, then the
    user's images and text (``NULL`` when the input has neither, as the reference does)."""
    content: list[dict] = [{"type": "image"} for _ in range(image_slots)]
    if text:
        content.append({"type": "text", "text": text})
    if not content:
        content.append({"type": "text", "text": "NULL"})
    return [
        {"role": "system", "content": [{"type": "text", "text": instruction}]},
        {"role": "user", "content": content},
    ]


def vlm_spec(config: ModelConfig, fmt: VlmFormat, hf_config: dict, *, engine: str, device: str,
             dtype: str, quantization: str | None = None, parameters: int = 0) -> ModelSpec:
    """The ``ModelSpec`` of a vision-language embedder (shared with the MLX engine).

    ``prompts`` hold the instructions the service passes back as ``encode_items(prompt=...)``: the
    format's query instruction and its default (document) instruction; ``query_prompt`` /
    ``document_prompt`` in the config replace them.
    """
    text = hf_config.get("text_config") or hf_config
    positions = int(text.get("max_position_embeddings") or 32768)
    limit = min(fmt.max_tokens or positions, positions)
    return ModelSpec(
        name=config.name,
        task="embed",
        max_tokens=min(config.max_tokens or limit, limit),
        dim=int(text["hidden_size"]),
        engine=engine,
        device=device,
        pooling="last",
        normalize=True if config.normalize is None else config.normalize,
        prompts={"query": fmt.query_instruction, "document": fmt.default_instruction},
        dtype=dtype,
        quantization=quantization,
        modalities=("text", "image"),  # a config's `modalities` narrows it (load_engine)
        fuses=True,
        instructions=True,
        architecture=str(hf_config.get("model_type", "")),
        parameters=parameters,
    )
