"""Unit tests of ``gateway.serving.rerank`` on a fake word-level cross-encoder: chunks, best chunk, order,
limits."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from gateway.config import ModelConfig, Settings
from gateway.engines import InputTooLong, ModelSpec, Tokens
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.serving.registry import Registry
from gateway.serving.rerank import rerank
from gateway.serving.runner import Runner

GOOD = 7  # the fake model's logit is the number of times the word "good" appears in the document part


class WordCrossEncoder:
    """Words are tokens; pairs are ``[CLS] query [SEP] document [SEP]``; ``max_tokens`` = 10."""

    def __init__(self) -> None:
        self.spec = ModelSpec(name="fake", task="rerank", max_tokens=10, dim=0, engine="fake", device="cpu")

    def _ids(self, text: str) -> list[int]:
        return [GOOD if word == "good" else 1 for word in text.split()]

    def tokenize(self, texts, *, truncate=True):
        return [Tokens([0, *self._ids(t), 0]) for t in texts]

    def tokenize_pairs(self, pairs, *, truncate=True):
        out = []
        for i, (query, document) in enumerate(pairs):
            ids = [0, *self._ids(query), 0, *[-t for t in self._ids(document)], 0]
            if len(ids) > self.spec.max_tokens and not truncate:
                raise InputTooLong(i, len(ids), self.spec.max_tokens)
            out.append(Tokens(ids[: self.spec.max_tokens], truncated=len(ids) > self.spec.max_tokens))
        return out

    def split_text(self, text: str, max_tokens: int) -> list[str]:
        words = text.split()
        return [" ".join(words[i : i + max_tokens]) for i in range(0, len(words), max_tokens)] or [text]

    def score(self, batch):
        return np.array([sum(1 for t in tokens.ids if t == -GOOD) for tokens in batch], np.float32)


def run_rerank(query, documents, settings=None, model="fake", **kwargs):
    async def go():
        registry = Registry(settings or Settings(models=[ModelConfig(name="fake", task="rerank")]))
        served = registry.models[0]
        served.engine = WordCrossEncoder()
        served.runner = Runner(served.engine)
        served.state = "ready"
        try:
            return await rerank(registry, model, query, documents, **kwargs)
        finally:
            await registry.close()

    return asyncio.run(go())


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_long_document_scores_as_its_best_chunk():
    # budget = 10 - len([CLS] q [SEP] [SEP]) = 6 words, floored at half the limit (5): chunks of 6 words
    long_doc = " ".join(["bad"] * 12 + ["good", "good"])
    result = run_rerank("q", [long_doc, "good", "bad"])
    assert [(r.index, r.raw_score) for r in result.results] == [(0, 2.0), (1, 1.0), (2, 0.0)]
    assert result.results[0].relevance_score == pytest.approx(sigmoid(2))
    assert result.chunks == 5 and result.search_units == 1
    first_two = run_rerank("q", [long_doc, "good", "bad"], max_chunks_per_doc=2)
    assert {r.index: r.raw_score for r in first_two.results}[0] == 0.0


def test_max_tokens_per_doc_shrinks_chunks():
    result = run_rerank("q", ["bad good bad good"], max_tokens_per_doc=1)
    assert result.chunks == 4 and result.results[0].raw_score == 1.0


def test_ties_keep_input_order_and_top_n_cuts():
    result = run_rerank("q", ["bad", "good", "bad", "good"], top_n=3)
    assert [r.index for r in result.results] == [1, 3, 0]
    assert len(run_rerank("q", ["a", "b"], top_n=50).results) == 2


def test_reject_policy_names_the_long_document():
    with pytest.raises(InvalidRequest, match=r"'texts\[1\]' is 14 tokens long with the query"):
        run_rerank("q", ["ok", " ".join(["w"] * 10)], overflow="reject", param="texts")


@pytest.mark.parametrize(
    ("query", "documents", "kwargs", "param"),
    [
        ("", ["a"], {}, "query"),
        ("  ", ["a"], {}, "query"),
        ("q", [], {}, "documents"),
        ("q", ["a"] * 4, {}, "documents"),
        ("q", ["a"], {"top_n": 0}, "top_n"),
        ("q", ["a"], {"max_chunks_per_doc": -1}, "max_chunks_per_doc"),
        ("q", ["a"], {"max_tokens_per_doc": 0}, "max_tokens_per_doc"),
    ],
)
def test_invalid_requests(query, documents, kwargs, param):
    settings = Settings(models=[ModelConfig(name="fake", task="rerank")], max_rerank_documents=3)
    with pytest.raises(InvalidRequest) as caught:
        run_rerank(query, documents, settings, **kwargs)
    assert caught.value.param == param


def test_unknown_model_and_default_model():
    with pytest.raises(ModelNotFound):
        run_rerank("q", ["a"], model="other")
    assert run_rerank("q", ["good"], model=None).model == "fake"
