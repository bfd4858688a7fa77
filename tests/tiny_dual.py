"""Tiny random CLIP and SigLIP dual encoders written to local folders, built offline.

No tokenizer can be downloaded, so both are built here: CLIP's is a byte-level BPE over the 256 byte
characters (each also with CLIP's end-of-word suffix) and an empty merges list, so every byte is one
token; SigLIP's is a SentencePiece unigram model trained on a few sentences (with byte fallback, so any
text tokenizes). Each folder holds the transformers model, its processor (tokenizer and image processor)
and the sentence-transformers configuration, as the hub's CLIP / SigLIP folders do. Weights are seeded.
Images are 32 x 32 (8-pixel patches), so MLX on a Linux CPU stays fast.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

IMAGE_SIZE, PATCH_SIZE = 32, 8
TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
CORPUS = ["a photo of a cat", "a photo of a dog", "the quick brown fox jumps over the lazy dog",
          "search product photos screenshots slides scanned pages", "hello world bonjour"]


def clip_tokenizer(max_length: int = 77) -> transformers.CLIPTokenizer:
    """CLIP's tokenizer with a vocabulary of single bytes (ids 0..511) and its two special tokens last."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = {char: i for i, char in enumerate(chars)}
    vocab.update({char + "</w>": len(chars) + i for i, char in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _save_sentence_transformer(path: Path, **module_options) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Transformer

    SentenceTransformer(modules=[Transformer(str(path), **module_options)], device="cpu").save(str(path))


def build_tiny_clip(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer CLIP (24-dimensional projections) with its processor and ST files to ``path``."""
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = clip_tokenizer()
    size = len(tokenizer)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=size, max_position_embeddings=77, bos_token_id=size - 2,
                         eos_token_id=size - 1, pad_token_id=size - 1, **TOWER),
        vision_config=dict(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **TOWER),
        projection_dim=24,
    )
    transformers.CLIPModel(config).eval().save_pretrained(str(path))
    images = transformers.CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                             crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    transformers.CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(path))
    _save_sentence_transformer(path)
    return path


def siglip_tokenizer(path: Path, max_length: int = 16) -> transformers.SiglipTokenizer:
    """A SigLIP (SentencePiece) tokenizer trained on ``CORPUS``, its model file written into ``path``."""
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_prefix=str(path / "spiece"), vocab_size=320,
        model_type="unigram", eos_id=1, pad_id=0, unk_id=2, bos_id=-1, byte_fallback=True,
        hard_vocab_limit=False, minloglevel=2,
    )
    return transformers.SiglipTokenizer(str(path / "spiece.model"), model_max_length=max_length)


def build_tiny_siglip(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer SigLIP (32-dimensional, 16-token texts) with its processor and ST files to ``path``.

    The sentence-transformers module pads texts to their maximum length (``processing_kwargs``), as the
    SigLIP model card says the model was trained.
    """
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = siglip_tokenizer(path)
    config = transformers.SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=16, bos_token_id=None,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **TOWER),
        vision_config=dict(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **TOWER),
    )
    transformers.SiglipModel(config).eval().save_pretrained(str(path))
    images = transformers.SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    transformers.SiglipProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(path))
    _save_sentence_transformer(path, processing_kwargs={"text": {"padding": "max_length"}})
    return path
