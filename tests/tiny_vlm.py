"""Tiny random-weight vision-language embedders (Qwen2-VL and Qwen3-VL backbones) written to local folders.

Each folder is laid out like the real model repos (``config.json`` + safetensors of the
``*ForConditionalGeneration`` model, tokenizer, processor config, and for Qwen3-VL the chat template),
so the engines load them exactly as they load Ops-MM-embedding-v1, GME or Qwen3-VL-Embedding.

The tokenizer is a real ``Qwen2Tokenizer`` (byte-level BPE, the Qwen tokenizer class) trained here on a
few standard-library docstrings, plus the special tokens the prompt formats use (``<|im_start|>``,
``<|image_pad|>``...), so nothing is downloaded. Weights are seeded: a folder built twice is the same.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                  "<|video_pad|>"]
MAX_POSITIONS = 2048

# The rendering of Qwen3-VL's chat template for the messages an embedder builds (a system message and
# a user message whose content lists images and text), as Qwen3-VL-Embedding's folders ship it.
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.content is string -%}{{- message.content -}}"
    "{%- else -%}{%- for content in message.content -%}"
    "{%- if content.type == 'image' or 'image' in content -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in content -%}{{- content.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@functools.cache
def _bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A 400-token byte-level BPE vocabulary and its merges, trained on a few stdlib docstrings."""
    import argparse
    import os
    import typing

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator([json.__doc__, os.__doc__, typing.__doc__, argparse.__doc__], trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def build_tokenizer() -> transformers.PreTrainedTokenizerBase:
    """A ``Qwen2Tokenizer`` with the Qwen chat and vision special tokens (ids after the 400 BPE tokens)."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab, merges = _bpe_vocab()
    tokenizer = Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges))
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    tokenizer.model_max_length = MAX_POSITIONS
    return tokenizer


def _token_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def qwen2_vl_config(tokenizer, tie_word_embeddings: bool = False) -> dict:
    """A 2-layer, 64-wide Qwen2-VL ``config.json`` (2-block, 32-wide vision tower, 14-pixel patches, 2x2
    merge), in the flat layout of the Qwen2-VL repos (text keys at the top, ``rope_scaling`` mrope)."""
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "hidden_act": "silu", "tie_word_embeddings": tie_word_embeddings, "torch_dtype": "float32",
        "vision_config": {"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                          "patch_size": 14, "spatial_patch_size": 14, "spatial_merge_size": 2,
                          "temporal_patch_size": 2, "in_chans": 3},
        **_token_ids(tokenizer),
    }


def qwen3_vl_config(tokenizer) -> dict:
    """A 2-layer, 64-wide Qwen3-VL ``config.json`` (2-block vision tower with one deepstack layer, 16-pixel
    patches), in the layout of the Qwen3-VL repos (``text_config`` and ``vision_config`` nested)."""
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
        "tie_word_embeddings": True,
        "text_config": {
            "model_type": "qwen3_vl_text", "vocab_size": len(tokenizer), "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": MAX_POSITIONS,
            "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "attention_bias": False,
            "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True},
            "tie_word_embeddings": True, "dtype": "float32",
        },
        "vision_config": {
            "model_type": "qwen3_vl", "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 64,
            "num_position_embeddings": 64, "deepstack_visual_indexes": [0], "in_channels": 3,
            "hidden_act": "gelu_pytorch_tanh",
        },
        **_token_ids(tokenizer),
    }


def _randomize(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Give every weight a seeded random value (std 0.1; norm weights near 1), returning the state dict."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    return {name: tensor.contiguous() for name, tensor in model.state_dict().items()}


def _write_folder(path: Path, config: dict, weights: dict[str, torch.Tensor], tokenizer) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(str(path))


def build_tiny_qwen2_vl(path: Path, layout: str = "ops-mm", seed: int = 0, legacy_keys: bool = True) -> Path:
    """Save a Qwen2-VL embedder in the Ops-MM-embedding-v1 (``ops-mm``) or GME (``gme``) repo layout.

    The two layouts differ only in the reference script the repo ships (``ops_mm_embedding_v1.py`` or
    ``gme_inference.py``), which is how the engines tell their prompt formats apart; here the script is
    a stub holding one comment (it is never imported). ``legacy_keys`` names the weights as those repos
    do (``model.layers.*``, ``visual.*``, ``lm_head``: transformers 4); False keeps transformers 5's
    names (``model.language_model.*``, ``model.visual.*``).

    Returns:
        ``path``.
    """
    tokenizer = build_tokenizer()
    config = qwen2_vl_config(tokenizer)
    model = transformers.Qwen2VLForConditionalGeneration(transformers.Qwen2VLConfig.from_dict(config))
    weights = _randomize(model, seed)
    if legacy_keys:
        renames = (("model.language_model.", "model."), ("model.visual.", "visual."))
        weights = {next((new + k[len(old):] for old, new in renames if k.startswith(old)), k): v
                   for k, v in weights.items()}
    _write_folder(path, config, weights, tokenizer)
    transformers.Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2).save_pretrained(
        str(path))
    script = "ops_mm_embedding_v1.py" if layout == "ops-mm" else "gme_inference.py"
    (path / script).write_text("# stand-in for the reference script of the model repo (never imported)\n")
    return path


def build_tiny_qwen3_vl(path: Path, seed: int = 0) -> Path:
    """Save a Qwen3-VL-Embedding-style folder (Qwen3-VL backbone, chat template, 16-pixel patches).

    Returns:
        ``path``.
    """
    tokenizer = build_tokenizer()
    config = qwen3_vl_config(tokenizer)
    model = transformers.Qwen3VLForConditionalGeneration(transformers.Qwen3VLConfig.from_dict(config))
    weights = {k: v for k, v in _randomize(model, seed).items() if not k.startswith("lm_head.")}  # tied
    _write_folder(path, config, weights, tokenizer)
    transformers.Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(str(path))
    (path / "chat_template.jinja").write_text(QWEN3_VL_CHAT_TEMPLATE)
    return path


def sample_image(width: int = 56, height: int = 84, seed: int = 0) -> Image.Image:
    """A seeded RGB noise image with some structure (a gradient), ``width`` x ``height`` pixels."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    pixels = 0.5 * gradient + 0.5 * rng.uniform(0, 255, (height, width, 3))
    return Image.fromarray(pixels.astype(np.uint8), "RGB")
