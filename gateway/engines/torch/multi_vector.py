"""Torch engine for sentence-transformers ``MultiVectorEncoder`` folders: ColBERT, and PyLate-format ColBERT
folders (sentence-transformers 6 loads them, with their query / document prefixes, query expansion and
punctuation skiplist).

Late-interaction models tokenize differently per side: a query gets the query prefix and, with query
expansion, is padded to a fixed length with expansion tokens the encoder does not attend to but MaxSim
scores; a document gets its prefix and the skiplist. So an input's side (``query`` / ``document`` /
None, as ``MultiVectorEncoder.encode(task=...)``) is fixed when it is tokenized, by the model's own
``preprocess`` (on the tokenizer thread), and the forward pass is the model's module pipeline on those
ids (``Transformer`` -> token ``Dense`` -> ``MultiVectorMask`` -> ``Normalize``), keeping exactly the
tokens the mask keeps: the rows equal ``encode_query`` / ``encode_document`` / ``encode``.

The model's prompts are the sides' prefixes and are applied here, per side: ``spec.prompts`` is empty so
the service never prepends them a second time.

Output (``Engine.forward(batch, "multi_vector")``): ``(tokens, dim)`` float32 per input, as the model's
pipeline ends (normalized when it ends in ``Normalize``). Memory: ``tokens x dim`` floats per input; the
service bounds a request's total (``gateway.serving.outputs.MAX_OUTPUT_FLOATS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import InputTooLong, ModelSpec, Output, Tokens
from gateway.engines.text.tokenization import HFTokenization
from gateway.engines.torch.core_sharing import CoreSharing
from gateway.engines.torch.engine import attach_st_model
from gateway.errors import UnprocessableInput


@dataclass(slots=True)
class SidedTokens(Tokens):
    """``Tokens`` of a late-interaction input: ``attended[i]`` says whether the encoder attends to
    ``ids[i]`` (query expansion tokens are not attended), ``expansion[i]`` whether ``ids[i]`` is a query
    expansion token (scored by MaxSim all the same); None when the input has no expansion."""

    attended: list[int] | None = None
    expansion: list[int] | None = None


class TorchMultiVectorEngine(CoreSharing, HFTokenization):
    """A sentence-transformers ``MultiVectorEncoder`` behind the ``Engine`` interface (output
    ``multi_vector``)."""

    def __init__(self, config: ModelConfig, path: str, lanes: int | None = None) -> None:
        from sentence_transformers import MultiVectorEncoder

        device, dtype = attach_st_model(self, MultiVectorEncoder, config, path, lanes)
        self._prompts = {k: v for k, v in (self.model.prompts or {}).items() if v}
        model_limit = self.model.max_seq_length or self.tokenizer.model_max_length
        transformer = self.model[0]
        self.spec = ModelSpec(
            name=config.name,
            task="embed",
            max_tokens=min(config.max_tokens or model_limit, model_limit),
            dim=int(self.model.get_embedding_dimension() or 0),
            engine="torch",
            device=device,
            pooling="none",
            dtype=dtype,
            architecture=getattr(getattr(transformer, "auto_model", None), "config", None).model_type
            if getattr(transformer, "auto_model", None) is not None else "",
            parameters=sum(p.numel() for p in self.model.parameters()),
            outputs=("multi_vector",),
        )

    # -- tokenization (tokenizer thread) ----------------------------------------------------------

    def _prompt(self, task: str | None) -> str | None:
        """The prefix ``MultiVectorEncoder.encode`` uses for ``task`` (``encode_query`` / ``encode_document``
        take the prompt of that name; a plain ``encode`` the default prompt, if any)."""
        if task is not None:
            return self._prompts.get(task)
        default = getattr(self.model, "default_prompt_name", None)
        return self._prompts.get(default) if default else None

    def tokenize(self, texts: list[str], *, truncate: bool = True, max_tokens: int | None = None,
                 truncation_side: Literal["right", "left"] = "right",
                 task: str | None = None) -> list[Tokens]:
        """See ``Engine.tokenize``: the model's own preprocessing of ``task``'s side (prefix, query
        expansion, per-side length). ``truncate=False`` rejects a text longer than the model's limit;
        ``max_tokens`` and ``truncation_side`` other than the defaults are not supported by the model's
        preprocessing and are refused.

        Raises:
            InputTooLong: a text is too long and ``truncate`` is False.
            ValueError: ``max_tokens`` / ``truncation_side`` other than the defaults (a server bug: the
                routes serving this engine never send them).
        """
        if max_tokens is not None or truncation_side != "right":
            raise ValueError("a multi-vector model truncates as its own preprocessing does")
        prompt = self._prompt(task)
        if not truncate:
            lengths = self.tokenizer([(prompt or "") + t for t in texts], add_special_tokens=True,
                                     verbose=False)["input_ids"]
            for index, ids in enumerate(lengths):
                if len(ids) > self.spec.max_tokens:
                    raise InputTooLong(index, len(ids), self.spec.max_tokens)
        features = self.model.preprocess(texts, prompt=prompt, task=task)
        ids = features["input_ids"].tolist()
        attended = features["attention_mask"].tolist()
        expansion = features.get("query_expansion_positions")
        expansion = expansion.tolist() if expansion is not None else None
        out: list[Tokens] = []
        for row in range(len(texts)):
            extra = expansion[row] if expansion is not None else [0] * len(ids[row])
            kept = [i for i, (a, e) in enumerate(zip(attended[row], extra, strict=True)) if a or e]
            start, stop = kept[0], kept[-1] + 1  # padding (either side) dropped
            out.append(SidedTokens(ids[row][start:stop], task=task, attended=attended[row][start:stop],
                                   expansion=extra[start:stop] if expansion is not None else None))
        return out

    def tokens_from_ids(self, ids: list[list[int]], **options) -> list[Tokens]:
        """Not offered: a late-interaction input's ids depend on its side's prefix and expansion.

        Raises:
            UnprocessableInput: always.
        """
        raise UnprocessableInput("a multi-vector model takes texts, not token ids")

    # -- forward passes (runner thread) -----------------------------------------------------------

    def _features(self, batch: list[SidedTokens]) -> dict[str, torch.Tensor]:
        width = max(len(t.ids) for t in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        expansion = np.zeros((len(batch), width), dtype=np.int64)
        for row, tokens in enumerate(batch):
            n = len(tokens.ids)
            ids[row, :n] = tokens.ids
            mask[row, :n] = tokens.attended if tokens.attended is not None else 1
            if tokens.expansion is not None:
                expansion[row, :n] = tokens.expansion
        features = {"input_ids": ids, "attention_mask": mask}
        if any(t.expansion is not None for t in batch):
            features["query_expansion_positions"] = expansion
        return {k: torch.from_numpy(v).to(self._device) for k, v in features.items()}

    @torch.inference_mode()
    def _rows(self, batch: list[SidedTokens], task: str | None) -> list[np.ndarray]:
        features = self.model(self._features(batch), task=task)
        vectors = features["token_embeddings"].float()
        masks = features["attention_mask"].bool()
        return [vectors[row][masks[row]].cpu().numpy() for row in range(len(batch))]

    def forward(self, batch: list[Tokens], output: Output) -> list[np.ndarray]:
        """See ``Engine.forward``: ``(tokens, dim)`` float32 per input (``output``: ``multi_vector``)."""
        if output != "multi_vector":
            raise ValueError(f"a multi-vector encoder does not produce {output!r} output")
        rows: list[np.ndarray | None] = [None] * len(batch)
        for task in dict.fromkeys(t.task for t in batch):  # each side runs with its own mask rules
            at = [i for i, t in enumerate(batch) if t.task == task]
            for i, row in zip(at, self._rows([batch[i] for i in at], task), strict=True):
                rows[i] = row
        return rows

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """Not a dense model: the service never asks (``spec.outputs`` is ``multi_vector``)."""
        raise ValueError("a multi-vector encoder gives no single vectors")

    def score(self, batch: list[Tokens]) -> np.ndarray:
        """Not a cross-encoder: rerank scores by MaxSim on ``forward`` rows (``serving.rerank``)."""
        raise ValueError("a multi-vector encoder does not score pairs")
