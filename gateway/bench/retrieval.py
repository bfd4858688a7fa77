"""A retrieval check on real text for comparing precisions: stdlib docstrings split in two.

Each docstring's first sentence is a query and the rest of it the one relevant document, found among
the other queries' documents plus ``distractors`` more docstring remainders. MRR@10 (mean reciprocal
rank of the relevant document, 0 past rank 10) measures how much a number format changes what a search
returns, beside the vector cosines (``benchmarks/precision.py``, ``tests/test_precision.py``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from gateway.bench.corpus import stdlib_docstrings

# a first sentence of 20-300 characters within the first paragraph, then at least 60 more characters
_FIRST_SENTENCE = re.compile(r"^((?:(?!\n\s*\n).){20,300}?[.!?])\s+(\S.{60,})$", re.DOTALL)


@dataclass(frozen=True)
class RetrievalSet:
    """Queries, documents and which document answers each query.

    Attributes:
        queries: first sentences, ``(q,)``.
        documents: the queries' remainders first (document ``i`` answers query ``i``), then distractors.
    """

    queries: list[str]
    documents: list[str]


def retrieval_set(queries: int = 200, distractors: int = 1000, seed: int = 0) -> RetrievalSet:
    """``queries`` (first sentence, remainder) splits of random stdlib docstrings and ``distractors``
    remainders of other docstrings (deterministic for a ``seed``).

    Raises:
        ValueError: the stdlib has fewer splittable docstrings than asked for.
    """
    splits = [m.groups() for doc in stdlib_docstrings() if (m := _FIRST_SENTENCE.match(doc))]
    splits = list(dict(splits).items())  # one document per distinct first sentence
    if len(splits) < queries + distractors:
        raise ValueError(f"only {len(splits)} docstrings split into a sentence and a remainder")
    random.Random(seed).shuffle(splits)
    chosen, others = splits[:queries], splits[queries:queries + distractors]
    return RetrievalSet([q for q, _ in chosen], [d for _, d in chosen] + [d for _, d in others])


def embed_texts(engine, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Unit-length ``(n, dim)`` float32 vectors of ``texts`` from an ``Engine`` (batches of similar length,
    so little padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), engine.spec.dim), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        out[rows] = engine.embed(engine.tokenize([texts[i] for i in rows]))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def mrr_at_10(query_vectors: np.ndarray, document_vectors: np.ndarray) -> float:
    """MRR@10 where document ``i`` is the one relevant to query ``i`` (unit vectors, cosine ranking)."""
    scores = query_vectors @ document_vectors.T
    relevant = scores[np.arange(len(scores)), np.arange(len(scores))]
    ranks = 1 + (scores > relevant[:, None]).sum(axis=1)
    return float(np.where(ranks <= 10, 1.0 / ranks, 0.0).mean())
