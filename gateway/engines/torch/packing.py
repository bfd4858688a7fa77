"""Padding-free forward passes for BERT bi-encoders on CPU: several inputs share one row.

A padded batch runs every layer on ``count x longest`` positions; with the mixed lengths of real traffic
about half of them are padding (16 random one-line docstrings: 52% real tokens). Packing places inputs
end to end in rows, restarts their position ids, and lets each attend only to itself (a block-diagonal
4D mask), so the linear layers, which dominate short sequences, run on real tokens only: +30-50% texts/s
on such batches. Rows are at least ``MIN_ROW_TOKENS`` long, so attention stays as cheap as in a padded
row. The vectors equal the padded pipeline's to float rounding (cosine > 0.99999, tests/test_packing.py).

Used only for the sentence-transformers pipeline ``Transformer(BERT, absolute positions) -> Pooling(mean
or CLS) [-> Normalize]`` on CPU (GPU kernels pay little for padding), and only for batches whose padding
would waste more than ``PACK_BELOW_FILL``; anything else keeps the padded path. A final Normalize is
left to the service, as on the padded path.
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.engines import Tokens
from gateway.engines.torch import scripted

MIN_ROW_TOKENS = 128
PACK_BELOW_FILL = 0.8  # pack when real tokens are under 80% of the padded batch
PIPELINE = ["Transformer", "Pooling"]  # sentence-transformers module class names (then maybe Normalize)


class PackedBert:
    """Embeds token batches of an eligible sentence-transformers model without padding (see module doc)."""

    def __init__(self, model, pooling: str) -> None:
        self.bert = model[0].auto_model
        self.pad_id = model.tokenizer.pad_token_id or 0
        self.pooling = pooling
        self._states = self._eager_states  # or the traced graph, after ``script``

    @classmethod
    def for_model(cls, model, device: str) -> PackedBert | None:
        """A packer for ``model`` (a ``SentenceTransformer``) when its pipeline allows it, else None."""
        modules = list(model)
        names = [type(module).__name__ for module in modules]
        if device != "cpu" or names not in (PIPELINE, [*PIPELINE, "Normalize"]):
            return None
        config = getattr(getattr(modules[0], "auto_model", None), "config", None)
        pooling = getattr(modules[1], "pooling_mode", None)
        eligible = (
            config is not None
            and config.model_type == "bert"
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and not config.is_decoder
            and config._attn_implementation in ("sdpa", "eager")
            and pooling in ("mean", "cls")
            and getattr(modules[1], "include_prompt", True)
        )
        return cls(model, pooling) if eligible else None

    @staticmethod
    def worth_it(batch: list[Tokens]) -> bool:
        """Whether padding would waste enough of this batch to pack it instead."""
        lengths = [len(t) for t in batch]
        return len(batch) > 1 and sum(lengths) < PACK_BELOW_FILL * max(lengths) * len(batch)

    def script(self) -> bool:
        """Run the BERT of packed batches as a traced TorchScript graph (``scripted.trace_states``: no GIL
        during the pass), checked against the eager model on packed probe batches first. Returns whether
        it is used (False: eager passes, as before)."""
        vocab = int(self.bert.config.vocab_size)
        longest = int(getattr(self.bert.config, "max_position_embeddings", 512))
        gen = torch.Generator().manual_seed(0)

        def packed_batch(lengths: list[int]) -> dict[str, torch.Tensor]:
            return self._inputs([Tokens(torch.randint(1, vocab, (min(n, longest),), generator=gen).tolist())
                                 for n in lengths])[0]

        def real(inputs: dict[str, torch.Tensor]) -> torch.Tensor:  # a token attends to itself; padding too
            return inputs["attention_mask"][:, 0].sum(-1) > 1

        example = packed_batch([5, 3, 2, 130, 40])
        probes = [packed_batch([9, 2]), packed_batch([60, 61, 7, 3, 100, 1]), packed_batch([200, 1])]
        self._states = scripted.trace_states(self.bert, example, probes, real) or self._states
        return self._states != self._eager_states  # bound methods: equal, never identical

    def _eager_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.bert(**inputs).last_hidden_state

    def _inputs(self, batch: list[Tokens]) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
        """The BERT inputs of a packed batch (``input_ids``, a ``(rows, 1, width, width)`` bool
        ``attention_mask``, ``position_ids``, ``token_type_ids``), each position's input index
        (``(rows, width)``, negative on padding) and each input's first flat position ``(n,)``."""
        rows = pack_rows([len(t) for t in batch], max(MIN_ROW_TOKENS, max(len(t) for t in batch)))
        width = max(sum(len(batch[i]) for i in row) for row in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        positions = np.zeros((len(rows), width), dtype=np.int64)
        segments = -1 - np.arange(len(rows) * width).reshape(len(rows), width)  # padding: attends to itself
        starts = np.zeros(len(batch), dtype=np.int64)  # flat index of each input's first token
        for r, row in enumerate(rows):
            offset = 0
            for i in row:
                n = len(batch[i])
                ids[r, offset:offset + n], positions[r, offset:offset + n] = batch[i].ids, np.arange(n)
                segments[r, offset:offset + n], starts[i] = i, r * width + offset
                offset += n
        segments_t = torch.from_numpy(segments)
        mask = (segments_t[:, :, None] == segments_t[:, None, :])[:, None]  # (rows, 1, width, width)
        ids_t = torch.from_numpy(ids)
        inputs = {"input_ids": ids_t, "attention_mask": mask, "position_ids": torch.from_numpy(positions),
                  "token_type_ids": torch.zeros_like(ids_t)}
        return inputs, segments, starts

    @torch.inference_mode()
    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """Embed a batch. Returns ``(n, dim)`` float32, pooled like the model's pipeline (not normalized)."""
        inputs, segments, starts = self._inputs(batch)
        hidden = self._states(inputs).float()  # pool in fp32
        vectors = self._pool(hidden.reshape(-1, hidden.shape[-1]), segments.reshape(-1), starts, batch)
        return vectors.float().numpy()

    def _pool(self, flat: torch.Tensor, segments: np.ndarray, starts: np.ndarray,
              batch: list[Tokens]) -> torch.Tensor:
        """``(rows * width, hidden)`` token states -> ``(n, hidden)`` mean or CLS vectors."""
        if self.pooling == "cls":
            return flat[torch.from_numpy(starts)]
        real = torch.from_numpy(np.flatnonzero(segments >= 0))
        owner = torch.from_numpy(segments[segments >= 0])
        sums = torch.zeros(len(batch), flat.shape[1], dtype=flat.dtype).index_add_(0, owner, flat[real])
        return sums / torch.tensor([len(t) for t in batch], dtype=flat.dtype)[:, None]


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: input indices grouped in rows of at most ``capacity`` tokens."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((r for r, space in enumerate(free) if space >= lengths[i]), None)
        if slot is None:
            rows.append([])
            free.append(capacity)
            slot = len(rows) - 1
        rows[slot].append(i)
        free[slot] -= lengths[i]
    return rows
