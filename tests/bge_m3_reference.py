"""A small reference for BGE-M3's three outputs, written from FlagEmbedding's documented formulas
(``FlagEmbedding/inference/embedder/encoder_only/m3.py``, ``M3Embedder.encode_single_device``, and the
model's ``_sparse_embedding`` / ``_colbert_embedding``), with plain transformers and torch.

FlagEmbedding itself is not installed: it pulls accelerate, peft and ir_datasets into the shared
environment and targets transformers 4. This reference runs the encoder once per text (no padding), so
it shares no batching code with the engine under test.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import transformers


class BgeM3Reference:
    """``encode(texts)`` -> dense ``(n, hidden)``, lexical weights ``[{token_id: weight}]`` and ColBERT
    vectors ``[(tokens - 1, dim)]``, as ``BGEM3FlagModel.encode(..., return_dense=True,
    return_sparse=True, return_colbert_vecs=True)`` returns them."""

    def __init__(self, folder: Path) -> None:
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        self.model = transformers.AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()
        self.sparse_linear = self._head(folder / "sparse_linear.pt")
        self.colbert_linear = self._head(folder / "colbert_linear.pt")
        special = self.tokenizer.special_tokens_map
        self.unused = {self.tokenizer.convert_tokens_to_ids(special[name])
                       for name in ("cls_token", "eos_token", "pad_token", "unk_token") if name in special}

    @staticmethod
    def _head(path: Path) -> torch.nn.Linear:
        state = torch.load(path, weights_only=True)
        head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
        head.load_state_dict(state)
        return head.eval()

    @torch.no_grad()
    def encode(self, texts: list[str], max_length: int = 512):
        dense, lexical, colbert = [], [], []
        for text in texts:
            inputs = self.tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = self.model(**inputs).last_hidden_state  # (1, tokens, hidden)
            dense.append(torch.nn.functional.normalize(hidden[:, 0], dim=-1)[0].numpy())
            weights = torch.relu(self.sparse_linear(hidden)).squeeze(-1)[0].numpy()
            result: dict[int, float] = defaultdict(int)
            for weight, token in zip(weights, inputs["input_ids"][0].tolist(), strict=True):
                if token not in self.unused and weight > 0 and weight > result[token]:
                    result[token] = float(weight)
            lexical.append(dict(result))
            vectors = self.colbert_linear(hidden[:, 1:]) * inputs["attention_mask"][:, 1:][:, :, None]
            vectors = torch.nn.functional.normalize(vectors, dim=-1)[0].numpy()
            colbert.append(vectors[:int(inputs["attention_mask"].sum()) - 1])
        return np.stack(dense), lexical, colbert
