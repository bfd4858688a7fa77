"""What each benchmark load sends: route, concurrency, and the request bodies it cycles through.

1. one short text per request, OpenAI ``/v1/embeddings``, ``base64`` and ``float``, concurrency 1-128;
2. 256 mixed-length texts per request (``base64``, the OpenAI SDK's default), concurrency 1 and 4;
3. Cohere ``/v1/rerank`` of one query with 20 or 100 documents, concurrency 1 and 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from gateway.bench.corpus import Corpus, cycle

SHORT_CONCURRENCY = (1, 8, 32, 128)
BATCH_TEXTS = 256
BATCH_CONCURRENCY = (1, 4)
RERANK_DOCUMENTS = (20, 100)
RERANK_CONCURRENCY = (1, 8)
RERANK_TOP_N = 10
BODIES_PER_LOAD = 512  # distinct bodies cycled through (built once, so the client spends no time on JSON)


@dataclass(frozen=True)
class Load:
    """One measured configuration.

    Attributes:
        group: ``1``, ``2`` or ``3`` (the load family, as ``--loads`` selects it).
        label: what is sent, e.g. ``1 text, float``.
        path: route to POST to.
        concurrency: requests in flight at once.
        texts: texts per request (documents for rerank), the unit of throughput.
        reference: key of the in-process reference it is compared with.
        bodies: JSON request bodies, cycled through.
        warmup: a small body for the same route, to open connections before measuring.
    """

    group: str
    label: str
    path: str
    concurrency: int
    texts: int
    reference: str
    bodies: tuple[bytes, ...]
    warmup: bytes = b""


def embedding_bodies(texts: list[str], per_request: int, model: str, encoding_format: str,
                     count: int) -> tuple[bytes, ...]:
    """``count`` OpenAI embedding bodies of ``per_request`` consecutive texts each."""
    return tuple(
        msgspec.json.encode({"model": model, "input": cycle(texts, i * per_request, per_request),
                             "encoding_format": encoding_format})
        for i in range(count)
    )


def rerank_bodies(corpus: Corpus, documents: list[str], per_request: int, model: str,
                  count: int) -> tuple[bytes, ...]:
    """``count`` Cohere rerank bodies: one query and ``per_request`` documents each."""
    return tuple(
        msgspec.json.encode({"model": model, "query": corpus.queries[i % len(corpus.queries)],
                             "documents": cycle(documents, i * per_request, per_request),
                             "top_n": RERANK_TOP_N})
        for i in range(count)
    )


def plan_loads(corpus: Corpus, rerank_documents: list[str], model: str, groups: set[str],
               quick: bool = False) -> list[Load]:
    """The loads of the selected ``groups`` (``{"1", "2", "3"}``), in table order.

    ``rerank_documents`` are the corpus texts that fit the model's input limit (so the server never
    chunks a document the reference would truncate). ``quick`` keeps one concurrency per group.
    """
    loads: list[Load] = []
    count = 64 if quick else BODIES_PER_LOAD
    if "1" in groups:
        for encoding_format in ("base64", "float"):
            bodies = embedding_bodies(corpus.short, 1, model, encoding_format, count)
            for concurrency in (1, 32) if quick else SHORT_CONCURRENCY:
                loads.append(Load("1", f"1 text, {encoding_format}", "/v1/embeddings", concurrency, 1,
                                  "short", bodies, bodies[-1]))
    if "2" in groups:
        small = embedding_bodies(corpus.mixed, 1, model, "base64", 1)[0]
        bodies = embedding_bodies(corpus.mixed, BATCH_TEXTS, model, "base64", 8 if quick else 32)
        for concurrency in (1,) if quick else BATCH_CONCURRENCY:
            loads.append(Load("2", f"{BATCH_TEXTS} texts, base64", "/v1/embeddings", concurrency,
                              BATCH_TEXTS, f"batch{BATCH_TEXTS}", bodies, small))
    if "3" in groups:
        for documents in RERANK_DOCUMENTS:
            bodies = rerank_bodies(corpus, rerank_documents, documents, model, count)
            small = rerank_bodies(corpus, rerank_documents, 1, model, 1)[0]
            for concurrency in (1,) if quick else RERANK_CONCURRENCY:
                loads.append(Load("3", f"rerank 1+{documents} docs", "/v1/rerank", concurrency, documents,
                                  f"rerank{documents}", bodies, small))
    return loads
