"""Torch engine for sentence-transformers ``SparseEncoder`` folders: SPLADE and inference-free SPLADE.

The forward pass is the model's own module pipeline (``MLMTransformer`` -> ``SpladePooling``, or a
``Router`` whose query side is a ``SparseStaticEmbedding``) fed with token ids we produce, so the weights
equal ``SparseEncoder.encode`` (``encode_query`` / ``encode_document`` for a ``Router``). Which side of a
``Router`` an input takes is decided when it is tokenized (``tokenize(..., task=...)``: the request's
input type; none: the router's default route, as ``SparseEncoder.encode`` does), because the sides
tokenize differently: a ``SparseStaticEmbedding`` reads the text's tokens without special tokens.

Output (``Engine.forward(batch, "sparse")``): one ``SparseVector`` per input, its non-zero vocabulary
weights in ascending index order; ``max_active_dims`` (top-k) is the service's, per request.
Memory: the MLM head's logits are ``(batch, tokens, vocab)`` in the forward dtype before pooling, so a
batch of the runner's padded-token budget ``B`` holds ``B x vocab`` of them (2,048 x 30,522 float32:
250 MB); the pooled rows are ``(batch, vocab)`` and only their non-zeros leave the engine.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import ModelSpec, Output, SparseVector, Tokens
from gateway.engines.text.tokenization import HFTokenization, encode
from gateway.engines.torch.core_sharing import CoreSharing
from gateway.engines.torch.engine import attach_st_model


def to_sparse_rows(dense: torch.Tensor) -> list[SparseVector]:
    """``(n, vocab)`` pooled weights -> one ``SparseVector`` per row (non-zeros, ascending indices)."""
    rows = dense.float().cpu().numpy()
    out = []
    for row in rows:
        indices = np.flatnonzero(row).astype(np.int32)
        out.append(SparseVector(indices, row[indices].astype(np.float32)))
    return out


def special_counts(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a single text (BERT: 1, 1)."""
    bare = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello", add_special_tokens=True)["input_ids"]
    before = next((i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare), 0)
    return before, len(full) - len(bare) - before


class TorchSparseEngine(CoreSharing, HFTokenization):
    """A sentence-transformers ``SparseEncoder`` behind the ``Engine`` interface (output ``sparse``)."""

    def __init__(self, config: ModelConfig, path: str, lanes: int | None = None) -> None:
        from sentence_transformers import SparseEncoder

        device, dtype = attach_st_model(self, SparseEncoder, config, path, lanes)
        first = self.model[0]
        self._router = first if type(first).__name__ == "Router" else None
        # route name -> its modules (a plain SPLADE pipeline is the one route None)
        self._routes: dict[str | None, list] = (
            {name: list(seq) for name, seq in self._router.sub_modules.items()} if self._router
            else {None: list(self.model)})
        model_limit = self.model.max_seq_length or self.tokenizer.model_max_length
        self._specials = special_counts(self.tokenizer)
        #: the model's own top-k (``config_sentence_transformers.json``), None: every non-zero term
        self.max_active_dims: int | None = getattr(self.model, "max_active_dims", None)
        self.spec = ModelSpec(
            name=config.name,
            task="embed",
            max_tokens=min(config.max_tokens or model_limit, model_limit),
            dim=int(self.model.get_embedding_dimension() or len(self.tokenizer)),
            engine="torch",
            device=device,
            pooling="splade",
            prompts={k: v for k, v in (getattr(self.model, "prompts", None) or {}).items() if v},
            dtype=dtype,
            architecture=self._architecture(),
            parameters=sum(p.numel() for p in self.model.parameters()),
            outputs=("sparse",),
        )

    def _architecture(self) -> str:
        for modules in self._routes.values():
            for module in modules:
                config = getattr(getattr(module, "auto_model", None), "config", None)
                if config is not None:
                    return getattr(config, "model_type", "") or ""
        return ""

    # -- tokenization (tokenizer thread) ----------------------------------------------------------

    def route_of(self, task: str | None) -> str | None:
        """The ``Router`` route an input of ``task`` (``query`` / ``document`` / None) takes, as
        ``SparseEncoder.encode(task=...)`` resolves it; None for a model without a router."""
        return self._router._resolve_route(task=task) if self._router is not None else None

    def _static(self, route: str | None) -> bool:
        return type(self._routes[route][0]).__name__ == "SparseStaticEmbedding"

    def tokenize(self, texts: list[str], *, truncate: bool = True, max_tokens: int | None = None,
                 truncation_side: Literal["right", "left"] = "right",
                 task: str | None = None) -> list[Tokens]:
        """See ``Engine.tokenize``; ``task`` picks a ``Router``'s side (``Tokens.task`` holds the route).

        A ``SparseStaticEmbedding`` side takes the text's tokens without special tokens, up to the
        same limit in text tokens plus what the specials would have taken (as its tokenizer call does).
        """
        route = self.route_of(task)
        if not self._static(route):
            tokens = super().tokenize(texts, truncate=truncate, max_tokens=max_tokens,
                                      truncation_side=truncation_side)
        else:
            before, after = self._specials
            limit = min(max_tokens or self.spec.max_tokens, self.spec.max_tokens) + before + after
            tokens = encode(self.tokenizer, {"text": texts}, limit, truncate, truncation_side)
            for t in tokens:
                t.ids = t.ids[before:len(t.ids) - after]
        for t in tokens:
            t.task = route
        return tokens

    def tokens_from_ids(self, ids: list[list[int]], *, truncate: bool = True, max_tokens: int | None = None,
                        truncation_side: Literal["right", "left"] = "right",
                        task: str | None = None) -> list[Tokens]:
        """See ``Engine.tokens_from_ids``; the ids are used as given on either side of a ``Router``."""
        tokens = super().tokens_from_ids(ids, truncate=truncate, max_tokens=max_tokens,
                                         truncation_side=truncation_side)
        for t in tokens:
            t.task = self.route_of(task)
        return tokens

    # -- forward passes (runner thread) -----------------------------------------------------------

    def _features(self, batch: list[Tokens]) -> dict[str, torch.Tensor]:
        width = max(1, max(len(t.ids) for t in batch))
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, tokens in enumerate(batch):
            ids[row, :len(tokens.ids)], mask[row, :len(tokens.ids)] = tokens.ids, 1
        return {"input_ids": torch.from_numpy(ids).to(self._device),
                "attention_mask": torch.from_numpy(mask).to(self._device)}

    @torch.inference_mode()
    def _pooled(self, batch: list[Tokens], route: str | None) -> torch.Tensor:
        """``(n, vocab)`` pooled weights of inputs of one route, through that route's modules."""
        features = self._features(batch)
        for module in self._routes[route]:
            features = module(features)
            if "token_embeddings" in features and features["token_embeddings"].dtype != torch.float32:
                features["token_embeddings"] = features["token_embeddings"].float()  # pool in float32
        return features["sentence_embedding"]

    def forward(self, batch: list[Tokens], output: Output) -> list[SparseVector]:
        """See ``Engine.forward``: one ``SparseVector`` per input (``output`` must be ``sparse``)."""
        if output != "sparse":
            raise ValueError(f"a sparse encoder does not produce {output!r} output")
        rows: list[SparseVector | None] = [None] * len(batch)
        for route in dict.fromkeys(t.task for t in batch):  # inputs of each side run together
            at = [i for i, t in enumerate(batch) if t.task == route]
            for i, row in zip(at, to_sparse_rows(self._pooled([batch[i] for i in at], route)), strict=True):
                rows[i] = row
        return rows

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """Not a dense model: the service never asks (``spec.outputs`` is ``sparse``)."""
        raise ValueError("a sparse encoder gives no dense vectors")

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Not a cross-encoder: the service never asks."""
        raise ValueError("a sparse encoder does not score pairs")
