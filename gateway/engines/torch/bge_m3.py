"""Torch engine for BGE-M3 folders (FlagEmbedding's layout): an XLM-RoBERTa sentence-transformers pipeline
(CLS pooling, Normalize) with ``sparse_linear.pt`` and / or ``colbert_linear.pt`` beside it.

The three outputs come from the encoder's last hidden states ``h`` (``(tokens, hidden)`` per input), as
FlagEmbedding's ``BGEM3FlagModel`` (``M3Embedder.encode``) computes them:

- ``dense``: the pipeline's CLS vector (``TorchEngine.embed``), normalized by the service;
- ``sparse``: ``relu(sparse_linear(h))``, one weight per token, the largest weight of each token id kept,
  zero weights and the tokenizer's CLS, EOS, PAD and UNK ids dropped (FlagEmbedding's ``unused_tokens``);
- ``multi_vector``: ``colbert_linear(h)`` of every token after CLS (the final EOS included), L2-normalized.

Each output is one encoder pass over the request's inputs (the runner batches by output kind). The
inputs are the same whatever the side (BGE-M3 has no query / document prefix), so ``task`` is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import Output, SparseVector, Tokens
from gateway.engines.torch.engine import TorchEngine

HEADS = {"sparse": "sparse_linear.pt", "multi_vector": "colbert_linear.pt"}


def load_head(path: Path, device: torch.device) -> torch.nn.Linear:
    """A FlagEmbedding head (a ``torch.nn.Linear`` state dict) as a float32 ``Linear`` on ``device``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    out_features, in_features = state["weight"].shape
    head = torch.nn.Linear(in_features, out_features, bias="bias" in state)
    head.load_state_dict(state)
    return head.float().to(device).eval()


class TorchBgeM3Engine(TorchEngine):
    """A BGE-M3 folder: dense vectors (the sentence-transformers pipeline) plus the FlagEmbedding heads the
    folder holds (``spec.outputs``: ``dense`` and ``sparse`` / ``multi_vector``)."""

    def __init__(self, config: ModelConfig, path: str, lanes: int | None = None) -> None:
        super().__init__(config, path, lanes)
        self._heads = {output: load_head(Path(path) / name, self._device) for output, name in HEADS.items()
                       if (Path(path) / name).is_file()}
        self.spec.outputs = ("dense", *self._heads)
        special = self.tokenizer.special_tokens_map
        self._unused = np.array(sorted({self.tokenizer.convert_tokens_to_ids(special[name])
                                        for name in ("cls_token", "eos_token", "pad_token", "unk_token")
                                        if name in special}), dtype=np.int64)
        self.max_active_dims: int | None = None

    def tokenize(self, texts: list[str], *, truncate: bool = True, max_tokens: int | None = None,
                 truncation_side: Literal["right", "left"] = "right",
                 task: str | None = None) -> list[Tokens]:
        """See ``Engine.tokenize``; ``task`` is accepted and ignored (both sides tokenize alike)."""
        return super().tokenize(texts, truncate=truncate, max_tokens=max_tokens,
                                truncation_side=truncation_side)

    def tokens_from_ids(self, ids: list[list[int]], *, task: str | None = None, **options) -> list[Tokens]:
        """See ``Engine.tokens_from_ids``; ``task`` is ignored."""
        return super().tokens_from_ids(ids, **options)

    @torch.inference_mode()
    def _hidden(self, batch: list[Tokens]) -> torch.Tensor:
        """``(n, width, hidden)`` float32 last hidden states (padding on the tokenizer's side: right)."""
        return self._raw_pipeline[0](self._features(batch))["token_embeddings"].float()

    @torch.inference_mode()
    def forward(self, batch: list[Tokens], output: Output) -> list:
        """See ``Engine.forward``: ``SparseVector`` rows (``sparse``) or ``(tokens - 1, dim)`` float32 rows
        (``multi_vector``), by FlagEmbedding's formulas (module docstring)."""
        if output not in self._heads:
            raise ValueError(f"this BGE-M3 folder has no head for {output!r} output")
        hidden = self._hidden(batch)
        if output == "sparse":
            weights = torch.relu(self._heads["sparse"](hidden)).squeeze(-1).cpu().numpy()  # (n, width)
            return [lexical_weights(t.ids, weights[row, :len(t.ids)], self._unused)
                    for row, t in enumerate(batch)]
        vectors = torch.nn.functional.normalize(self._heads["multi_vector"](hidden[:, 1:]), dim=-1)
        return [vectors[row, :len(t.ids) - 1].cpu().numpy() for row, t in enumerate(batch)]


def lexical_weights(ids: list[int], weights: np.ndarray, unused: np.ndarray) -> SparseVector:
    """Per-token weights -> the largest positive weight of each token id (``unused`` ids dropped), ids
    ascending."""
    ids_array = np.asarray(ids, dtype=np.int64)
    keep = (weights > 0) & ~np.isin(ids_array, unused)
    ids_array, kept = ids_array[keep], weights[keep].astype(np.float32)
    if not len(ids_array):
        return SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32))
    order = np.lexsort((-kept, ids_array))  # by id, largest weight first within an id
    ids_array, kept = ids_array[order], kept[order]
    first = np.r_[True, ids_array[1:] != ids_array[:-1]]
    return SparseVector(ids_array[first].astype(np.int32), kept[first])
