"""MLX model families behind one small interface: hidden states for embedders, logits for rerankers.

* Encoders (BERT, XLM-RoBERTa/RoBERTa, ModernBERT) use the architectures of ``mlx-embeddings``, loaded
  from plain Hugging Face / sentence-transformers folders by its own loader (which also reads MLX
  quantized folders). We subclass its models only to add the sequence-classification heads of
  cross-encoders and to map Hugging Face weight names (``bert.`` / ``roberta.`` prefixes).
* Decoders (Qwen3-Embedding, Qwen3-Reranker and other ``mlx-lm`` architectures) use ``mlx-lm``'s
  model classes and loader, which handles 4-bit/8-bit MLX folders (a ``quantization`` config entry).

All inputs are right-padded: encoders get an attention mask; decoders are causal, so real tokens never
see the padding on their right and the last real token's state is exact.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

# Hugging Face model_type -> mlx_embeddings.models module
ENCODER_TYPES = {
    "bert": "bert",
    "xlm-roberta": "xlm_roberta",
    "roberta": "xlm_roberta",
    "modernbert": "modernbert",
}
_BASE_MODEL_PREFIXES = ("bert.", "roberta.")  # how *ForSequenceClassification checkpoints name the encoder


def is_encoder(hf_config: dict) -> bool:
    """Whether ``config.json`` describes an encoder the MLX engine runs with mlx-embeddings."""
    return hf_config.get("model_type") in ENCODER_TYPES


class RobertaClassificationHead(nn.Module):
    """XLM-RoBERTa's cross-encoder head: dense + tanh + projection of the first token's state."""

    def __init__(self, hidden_size: int, num_labels: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def __call__(self, first_token: mx.array) -> mx.array:
        return self.out_proj(mx.tanh(self.dense(first_token)))


def _encoder_class(base: type[nn.Module], family: str, task: str, num_labels: int) -> type[nn.Module]:
    """Subclass mlx-embeddings' ``base`` model: ``hidden_states``, ``class_logits``, HF weight names."""

    class Encoder(base):
        def __init__(self, args) -> None:
            super().__init__(args)
            if task == "rerank" and family == "bert":
                self.classifier = nn.Linear(args.hidden_size, num_labels)
            elif task == "rerank" and family == "xlm_roberta":
                self.classifier = RobertaClassificationHead(args.hidden_size, num_labels)

        def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
            weights = super().sanitize({_strip_base_prefix(k): v for k, v in weights.items()})
            own = dict(tree_flatten(self.parameters()))
            # Many embedding checkpoints lack the BERT pooler, and cross-encoder ones carry it where
            # the MLX class has none: it is unused there, so keep the model's own (initial) values.
            weights = {k: v for k, v in weights.items() if k in own or not k.startswith("pooler.")}
            return weights | {k: v for k, v in own.items() if k.startswith("pooler.") and k not in weights}

        def hidden_states(self, ids: mx.array, mask: mx.array, types: mx.array | None) -> mx.array:
            if family == "modernbert":
                return self.model(ids, attention_mask=mask)["last_hidden_state"]
            return self(ids, attention_mask=mask, token_type_ids=types).last_hidden_state

        def class_logits(self, ids: mx.array, mask: mx.array, types: mx.array | None) -> mx.array:
            if family == "bert":  # BertForSequenceClassification: pooler (dense + tanh on [CLS]), linear
                return self.classifier(self(ids, attention_mask=mask, token_type_ids=types).pooler_output)
            hidden = self.hidden_states(ids, mask, types)
            if family == "xlm_roberta":
                return self.classifier(hidden[:, 0])
            pooled = hidden[:, 0] if self.config.classifier_pooling == "cls" else masked_mean(hidden, mask)
            return self.classifier(self.head(pooled))

    return Encoder


def _strip_base_prefix(key: str) -> str:
    for prefix in _BASE_MODEL_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def load_encoder(path: str | Path, hf_config: dict, task: str) -> nn.Module:
    """Load an encoder folder with mlx-embeddings; the model has ``hidden_states`` and ``class_logits``.

    Raises:
        ValueError: the model type is not an encoder mlx-embeddings implements.
        FileNotFoundError: no safetensors weights in the folder.
    """
    from mlx_embeddings.utils import load_model

    family = ENCODER_TYPES[hf_config["model_type"]]
    arch = importlib.import_module(f"mlx_embeddings.models.{family}")
    model_class = _encoder_class(arch.Model, family, task, int(hf_config.get("num_labels", 1)))
    return load_model(Path(path), get_model_classes=lambda config: (model_class, arch.ModelArgs, None, None))


def _decoder_classes(config: dict) -> tuple[type[nn.Module], type]:
    """mlx-lm's classes for ``config``, reading bare backbone exports (keys without ``model.``) too."""
    from mlx_lm.utils import _get_classes  # load_model's own default resolver (model_type remapping)

    base, args_class = _get_classes(config)

    class Decoder(base):
        def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
            if not any(k.startswith("model.") for k in weights):  # e.g. Qwen3-Embedding: a bare Qwen3Model
                weights = {k if k.startswith("lm_head.") else f"model.{k}": v for k, v in weights.items()}
            if "lm_head" not in self:  # embedders never use the LM head: drop it if present
                weights = {k: v for k, v in weights.items() if not k.startswith("lm_head.")}
            return super().sanitize(weights)

    return Decoder, args_class


def load_decoder(path: str | Path, *, keep_lm_head: bool = False) -> nn.Module:
    """Load a decoder folder (plain or MLX-quantized) with mlx-lm.

    Args:
        path: model folder.
        keep_lm_head: True for rerankers. Embedders are built without an LM head (as if tied), so
            folders that ship none (Qwen3-Embedding) still load strictly.
    """
    from mlx_lm.utils import load_model

    overrides = None if keep_lm_head else {"tie_word_embeddings": True}
    model, _ = load_model(Path(path), model_config=overrides, get_model_classes=_decoder_classes)
    return model


def decoder_lm_logits(model: nn.Module, hidden: mx.array) -> mx.array:
    """Project ``(n, hidden)`` final states to ``(n, vocab)`` logits with the LM head (or tied embeddings)."""
    if "lm_head" in model:
        return model.lm_head(hidden)
    return model.model.embed_tokens.as_linear(hidden)


def masked_mean(hidden: mx.array, mask: mx.array) -> mx.array:
    """Mean of ``(n, L, H)`` states over real tokens (``mask``: ``(n, L)`` of 0/1), like ST's Pooling."""
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / mx.maximum(weights.sum(axis=1), 1e-9)


def pool(hidden: mx.array, mask: mx.array, last: mx.array, mode: str) -> mx.array:
    """Pool ``(n, L, H)`` states to ``(n, H)`` float32 by ``mean`` | ``cls`` | ``last``.

    ``last`` takes, per row, the state at index ``last`` (``(n,)`` int32): the last real token.
    """
    hidden = hidden.astype(mx.float32)
    if mode == "mean":
        return masked_mean(hidden, mask)
    if mode == "cls":
        return hidden[:, 0]
    return hidden[mx.arange(hidden.shape[0]), last]
