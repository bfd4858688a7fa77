"""Reference rerank scores computed in-process with sentence-transformers, for the rerank compat tests.

The server's documented maps: bi-encoder ``relevance = (cos + 1) / 2``, cross-encoder
``relevance = sigmoid(logit)``; a long document scores as its best chunk, chunks cut at token offsets.
"""

from __future__ import annotations

import math

import numpy as np

QUERY = "What is the capital of France?"
PASSAGES = [
    "Bananas are an excellent source of potassium and dietary fibre.",
    "The Eiffel Tower was completed in 1889 for the World's Fair.",
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "The stock market closed higher on Tuesday after strong earnings reports.",
]
RELEVANT = 2  # index of the passage that answers QUERY

FILLER = "Gardening tips: water tomato plants early in the morning and mulch the soil. " * 30  # > 256 tokens


def split_at_tokens(tokenizer, text: str, max_tokens: int) -> list[str]:
    """Consecutive chunks of ``text`` of at most ``max_tokens`` tokens (no specials), cut at token starts."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= max_tokens:
        return [text]
    starts = [offsets[i][0] for i in range(0, len(offsets), max_tokens)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def bi_encoder_relevance(model, query: str, documents: list[str]) -> np.ndarray:
    """``(n,)`` float64 ``(cos + 1) / 2`` of each document with the query (no chunking)."""
    vectors = model.encode([query, *documents], normalize_embeddings=True).astype(np.float64)
    return (vectors[1:] @ vectors[0] + 1) / 2


def best_chunk_relevance(model, query: str, document: str, max_chunks: int = 10) -> float:
    """Relevance of a long document to ``query`` as its best chunk at the bi-encoder's limit."""
    budget = model.max_seq_length - 2  # [CLS] and [SEP]
    chunks = split_at_tokens(model.tokenizer, document, budget)[:max_chunks]
    return float(bi_encoder_relevance(model, query, chunks).max())


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def check_sorted_scores(scores: list[float]) -> None:
    """Scores lie in [0, 1] and come best first."""
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True), scores
