"""Torch engine on sentence-transformers: ``SentenceTransformer`` bi-encoders and ``CrossEncoder`` rerankers.

The forward pass is the model's own sentence-transformers module pipeline (transformer, pooling,
normalize, dense...), fed with token ids we produce, so the vectors equal ``SentenceTransformer.encode``
and the scores equal ``CrossEncoder.predict(..., activation_fn=Identity())``.
Device preference: CUDA, then MPS, then CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.config import ModelConfig
from gateway.engines import Engine, InputTooLong, ModelSpec, Tokens, TokenSpan


def pick_device(override: str | None = None) -> str:
    """``override`` if given, else ``cuda``, ``mps`` or ``cpu``, whichever is available first."""
    if override:
        return override
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class TorchEngine:
    """A sentence-transformers model (bi-encoder or cross-encoder) behind the ``Engine`` interface."""

    def __init__(self, config: ModelConfig, path: str) -> None:
        from sentence_transformers import CrossEncoder, SentenceTransformer

        device = pick_device(config.device)
        cls = CrossEncoder if config.task == "rerank" else SentenceTransformer
        self.model = cls(path, device=device, local_files_only=True)
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        model_limit = self.model.max_seq_length or self.tokenizer.model_max_length
        max_tokens = min(config.max_tokens or model_limit, model_limit)
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._pad_left = self.tokenizer.padding_side == "left"
        self._device = torch.device(device)
        self.spec = ModelSpec(
            name=config.name,
            task=config.task,
            max_tokens=max_tokens,
            dim=0 if config.task == "rerank" else int(self.model.get_embedding_dimension()),
            engine="torch",
            device=device,
            pooling=self._pooling_mode(),
            normalize=self._normalizes(),
            prompts={k: v for k, v in (getattr(self.model, "prompts", None) or {}).items() if v},
            dtype=str(next(self.model.parameters()).dtype).removeprefix("torch."),
        )

    def _pooling_mode(self) -> str:
        for module in self.model:
            mode = getattr(module, "pooling_mode", None)
            if isinstance(mode, str):
                return {"lasttoken": "last"}.get(mode, mode)
        return "none"

    def _normalizes(self) -> bool:
        return any(type(module).__name__ == "Normalize" for module in self.model)

    # -- tokenization (tokenizer thread) -------------------------------------------------------

    def tokenize(self, texts: list[str], *, truncate: bool = True, max_tokens: int | None = None,
                 truncation_side: str = "right") -> list[Tokens]:
        """See ``Engine.tokenize``."""
        limit = min(max_tokens or self.spec.max_tokens, self.spec.max_tokens)
        limit = max(limit, self.tokenizer.num_special_tokens_to_add() + 1)
        return self._encode(dict(text=texts), truncate, limit, truncation_side)

    def tokenize_pairs(self, pairs: list[tuple[str, str]], *, truncate: bool = True) -> list[Tokens]:
        """See ``Engine.tokenize_pairs``."""
        inputs = dict(text=[q for q, _ in pairs], text_pair=[d for _, d in pairs])
        return self._encode(inputs, truncate, self.spec.max_tokens)

    def _encode(self, inputs: dict[str, list[str]], truncate: bool, limit: int,
                side: str = "right") -> list[Tokens]:
        full = self.tokenizer(**inputs, add_special_tokens=True, truncation=False, verbose=False)
        too_long = [i for i, ids in enumerate(full["input_ids"]) if len(ids) > limit]
        if too_long and not truncate:
            first = too_long[0]
            raise InputTooLong(first, len(full["input_ids"][first]), limit)
        cut = {}
        if too_long:  # re-tokenize only the long ones, with the tokenizer's own truncation strategy
            subset = {k: [v[i] for i in too_long] for k, v in inputs.items()}
            enc = self._truncated(subset, limit, side)
            cut = {i: j for j, i in enumerate(too_long)}
        type_ids = full.get("token_type_ids") if "text_pair" in inputs else None
        out = []
        for i, ids in enumerate(full["input_ids"]):
            if i in cut:
                j = cut[i]
                types = enc.get("token_type_ids")
                out.append(Tokens(enc["input_ids"][j], types[j] if type_ids and types else None, True))
            else:
                out.append(Tokens(ids, type_ids[i] if type_ids else None))
        return out

    def _truncated(self, inputs: dict[str, list[str]], limit: int, side: str):
        """Tokenize, truncating from ``side`` (safe: only the tokenizer thread uses this tokenizer)."""
        default_side, self.tokenizer.truncation_side = self.tokenizer.truncation_side, side
        try:
            return self.tokenizer(**inputs, add_special_tokens=True, truncation=True, max_length=limit)
        finally:
            self.tokenizer.truncation_side = default_side

    def tokenize_spans(self, texts: list[str], *, add_special_tokens: bool = True) -> list[list[TokenSpan]]:
        """See ``Engine.tokenize_spans``."""
        enc = self.tokenizer(texts, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                             return_special_tokens_mask=True, truncation=False, verbose=False)
        out = []
        for text, ids, offsets, specials in zip(
            texts, enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"], strict=True
        ):
            names = self.tokenizer.convert_ids_to_tokens(ids)
            out.append([
                TokenSpan(i, name, True, None, None) if special else TokenSpan(i, text[a:b], False, a, b)
                for i, name, (a, b), special in zip(ids, names, offsets, specials, strict=True)
            ])
        return out

    def decode(self, ids: list[list[int]], *, skip_special_tokens: bool = True) -> list[str]:
        """See ``Engine.decode``."""
        vocab = len(self.tokenizer)
        bad = next((i for row in ids for i in row if not 0 <= i < vocab), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is not in this model's vocabulary (0..{vocab - 1})")
        return self.tokenizer.batch_decode(ids, skip_special_tokens=skip_special_tokens)

    def split_text(self, text: str, max_tokens: int) -> list[str]:
        """See ``Engine.split_text``: chunk boundaries fall on token offsets of the original text."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = enc["offset_mapping"]
        if len(offsets) <= max_tokens:
            return [text]
        starts = [offsets[i][0] for i in range(0, len(offsets), max_tokens)]
        return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]

    # -- forward passes (runner thread) ---------------------------------------------------------

    def _features(self, batch: list[Tokens]) -> dict[str, torch.Tensor]:
        """Pad a batch on the tokenizer's padding side into input_ids / attention_mask (/ token_type_ids)."""
        width = max(len(t) for t in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64) if batch[0].type_ids is not None else None
        for row, tokens in enumerate(batch):
            span = slice(width - len(tokens), width) if self._pad_left else slice(0, len(tokens))
            ids[row, span], mask[row, span] = tokens.ids, 1
            if types is not None and tokens.type_ids is not None:
                types[row, span] = tokens.type_ids
        features = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            features["token_type_ids"] = types
        return {k: torch.from_numpy(v).to(self._device) for k, v in features.items()}

    @torch.inference_mode()
    def embed(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.embed``: ``(n, dim)`` float32."""
        out = self.model(self._features(batch))["sentence_embedding"]
        return out.float().cpu().numpy()

    @torch.inference_mode()
    def score(self, batch: list[Tokens]) -> np.ndarray:
        """See ``Engine.score``: ``(n,)`` float32 raw logits (first label)."""
        scores = self.model(self._features(batch))["scores"]
        return scores.float().reshape(len(batch), -1)[:, 0].cpu().numpy()


def load_torch_engine(config: ModelConfig, path: str, **_options: object) -> Engine:
    """Load ``path`` as a sentence-transformers model (see ``TorchEngine``)."""
    return TorchEngine(config, path)
