"""Tiny random-weight retrieval models whose outputs are not (only) dense sentence vectors, built offline.

SPLADE and inference-free SPLADE ``SparseEncoder`` folders, a ``MultiVectorEncoder`` (ColBERT) folder, a
PyLate-format ColBERT folder, a BGE-M3-layout folder (dense pipeline plus FlagEmbedding's
``sparse_linear.pt`` / ``colbert_linear.pt``) and a classifier with named labels. Each is written the way
its library saves it (sentence-transformers 6 for the first three; PyLate's and FlagEmbedding's layouts by
hand, as those libraries are not installed). All reuse the MiniLM tokenizer of ``tiny_models``; weights
are seeded and wider than the default initialisation, so their outputs vary with the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

from tests.tiny_models import save_tokenizer, tiny_encoder_config

WIDE_INIT = 0.2  # initializer_range: outputs of order 1 rather than ~0


def _config(family: str = "bert", **changes) -> transformers.PretrainedConfig:
    config = tiny_encoder_config(family)
    config.initializer_range = WIDE_INIT
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def build_tiny_splade(path: Path, seed: int = 0) -> Path:
    """A SPLADE ``SparseEncoder`` (a ``BertForMaskedLM`` behind sentence-transformers' fill-mask
    ``Transformer``, then ``SpladePooling``) saved by sentence-transformers to ``path``."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    transformers.BertForMaskedLM(_config()).eval().save_pretrained(str(path))
    save_tokenizer(path)
    mlm = Transformer(str(path), transformer_task="fill-mask")
    SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu").save(str(path))
    return path


def build_tiny_inference_free_splade(path: Path, seed: int = 0) -> Path:
    """An inference-free SPLADE ``SparseEncoder``: a ``Router`` sending queries to a
    ``SparseStaticEmbedding`` (one weight per vocabulary token) and documents to MLM + ``SpladePooling``,
    saved by sentence-transformers to ``path`` (the folder has no top-level ``config.json``)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (
        Router,
        SparseStaticEmbedding,
        SpladePooling,
        Transformer,
    )

    torch.manual_seed(seed)
    backbone = path.parent / f"{path.name}-mlm"
    backbone.mkdir(parents=True, exist_ok=True)
    transformers.BertForMaskedLM(_config()).eval().save_pretrained(str(backbone))
    save_tokenizer(backbone)
    mlm = Transformer(str(backbone), transformer_task="fill-mask")
    static = SparseStaticEmbedding(tokenizer=mlm.tokenizer, frozen=False)
    router = Router.for_query_document(query_modules=[static], document_modules=[mlm, SpladePooling("max")])
    SparseEncoder(modules=[router], device="cpu").save(str(path))
    return path


def build_tiny_colbert(path: Path, seed: int = 0) -> Path:
    """A ColBERT ``MultiVectorEncoder`` (Transformer -> token Dense -> MultiVectorMask -> Normalize) saved by
    sentence-transformers to ``path``."""
    from sentence_transformers import MultiVectorEncoder

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    transformers.BertModel(_config()).eval().save_pretrained(str(path))
    save_tokenizer(path)
    MultiVectorEncoder(str(path), device="cpu").save(str(path))
    return path


def build_tiny_pylate_colbert(path: Path, seed: int = 0, dim: int = 32) -> Path:
    """A PyLate-format ColBERT folder, written as PyLate saves one: modules.json lists a sentence-transformers
    ``Transformer`` and ``pylate.models.Dense.Dense`` (token projection, no bias), and
    ``config_sentence_transformers.json`` says ``"model_type": "ColBERT"`` with PyLate's query/document
    settings and ``MaxSim`` similarity."""
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    transformers.BertModel(_config()).eval().save_pretrained(str(path))
    save_tokenizer(path)
    bert_config = {"max_seq_length": 179, "do_lower_case": False}
    (path / "sentence_bert_config.json").write_text(json.dumps(bert_config))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (path / "modules.json").write_text(json.dumps(modules, indent=2))
    dense = path / "1_Dense"
    dense.mkdir(exist_ok=True)
    dense_config = {"in_features": 64, "out_features": dim, "bias": False,
                    "activation_function": "torch.nn.modules.linear.Identity"}
    (dense / "config.json").write_text(json.dumps(dense_config))
    from safetensors.torch import save_file

    save_file({"linear.weight": torch.randn(dim, 64) * WIDE_INIT}, str(dense / "model.safetensors"))
    st_config = {"model_type": "ColBERT", "query_prefix": "[unused0]", "document_prefix": "[unused1]",
                 "query_length": 32, "document_length": 180, "do_query_expansion": True,
                 "attend_to_expansion_tokens": False, "skiplist_words": [".", ","],
                 "similarity_fn_name": "MaxSim", "prompts": {}, "default_prompt_name": None}
    (path / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2))
    return path


def build_tiny_bge_m3(path: Path, seed: int = 0) -> Path:
    """A BGE-M3-layout folder: an XLM-RoBERTa encoder with a dense sentence-transformers pipeline
    (Transformer -> CLS Pooling -> Normalize, as BAAI/bge-m3 ships it) and FlagEmbedding's extra heads beside
    it: ``sparse_linear.pt`` (``Linear(hidden, 1)``: one weight per token) and ``colbert_linear.pt``
    (``Linear(hidden, hidden)``: one vector per token), saved as state dicts the way FlagEmbedding does."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    transformers.XLMRobertaModel(_config("xlm-roberta")).eval().save_pretrained(str(path))
    save_tokenizer(path)
    modules = [Transformer(str(path)), Pooling(64, pooling_mode="cls"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    sparse = torch.nn.Linear(64, 1)
    torch.nn.init.normal_(sparse.weight, std=WIDE_INIT)  # default init left every token's weight <= 0
    torch.nn.init.zeros_(sparse.bias)
    torch.save(sparse.state_dict(), path / "sparse_linear.pt")
    torch.save(torch.nn.Linear(64, 64).state_dict(), path / "colbert_linear.pt")
    return path


CLASSIFIER_LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def build_tiny_classifier(path: Path, labels: dict[int, str] | None = None, seed: int = 0) -> Path:
    """A ``BertForSequenceClassification`` with named labels (default: negative / neutral / positive), as
    transformers saves it to ``path`` (no sentence-transformers files)."""
    labels = labels or CLASSIFIER_LABELS
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    config = _config(num_labels=len(labels))
    config.id2label = dict(labels)
    config.label2id = {name: index for index, name in labels.items()}
    transformers.BertForSequenceClassification(config).eval().save_pretrained(str(path))
    save_tokenizer(path)
    return path
