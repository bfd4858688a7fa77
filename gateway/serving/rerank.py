"""Protocol-neutral reranking shared by every rerank route (Cohere v1/v2, Jina, TEI).

Two kinds of model rerank:

- cross-encoders (``task = "rerank"``) score each ``(query, chunk)`` pair; the raw score is the model's
  logit and ``relevance_score = sigmoid(logit)``, as Cohere, Jina and TEI report it;
- every embedding model reranks as a bi-encoder: the query (with the model's query prompt) and the
  chunks (with its document prompt) are embedded, the raw score is their cosine and
  ``relevance_score = (cosine + 1) / 2``, a monotone map of [-1, 1] onto [0, 1] that keeps the order;
- a multi-vector (ColBERT) model scores by late interaction: the query's token vectors (query side) and
  each chunk's (document side), the raw score is MaxSim, the sum over query tokens of the best dot
  product with any chunk token (``MultiVectorEncoder.similarity``, ``maxsim``), and
  ``relevance_score = (MaxSim / query_tokens + 1) / 2``: the mean best similarity per query token (in
  [-1, 1] for the normalized vectors ColBERT gives) mapped onto [0, 1]. One query's documents share the
  divisor, so the order is MaxSim's.

Long documents are split at the model's limit (less the query and special tokens for cross-encoders,
less the document prompt for bi-encoders, or ``max_tokens_per_doc`` when smaller); at most
``max_chunks_per_doc`` chunks are scored and a document scores as its best chunk, as Cohere does
(https://docs.cohere.com/docs/reranking-best-practices). The chunking and tokenizing run on the
model's tokenizer thread (``ServedModel.tokenize``); see ``gateway.serving.rerank_inputs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gateway.config import Settings
from gateway.engines.text.pooling import l2_normalize
from gateway.errors import InvalidRequest
from gateway.serving import request_context
from gateway.serving.registry import Registry
from gateway.serving.rerank_inputs import Overflow, RerankInputs, prepare_inputs
from gateway.serving.service import SHORT_CHARS, SHORT_INPUTS, admitted, check_list_size, check_token_total

DOCUMENTS_PER_SEARCH_UNIT = 100  # Cohere bills one search unit per query and 100 documents (chunks)


@dataclass(slots=True)
class RankedDocument:
    """One document's score.

    Attributes:
        index: position in the request's document list.
        relevance_score: in [0, 1]: sigmoid of the logit, (cosine + 1) / 2 for bi-encoders, or
            (MaxSim / query tokens + 1) / 2 for multi-vector models.
        raw_score: the logit (cross-encoder), the cosine (bi-encoder) or the MaxSim (multi-vector) of the
            best chunk.
    """

    index: int
    relevance_score: float
    raw_score: float


@dataclass(slots=True)
class Reranked:
    """Rerank results, sorted by ``relevance_score`` descending (ties keep input order), cut to ``top_n``.

    Attributes:
        tokens: model tokens processed (query and every chunk, special tokens included).
        chunks: chunks scored over all documents.
        model: the served name used.
    """

    results: list[RankedDocument]
    tokens: int
    chunks: int
    model: str

    @property
    def search_units(self) -> int:
        """Cohere's billing unit: one per started block of 100 scored chunks."""
        return max(1, math.ceil(self.chunks / DOCUMENTS_PER_SEARCH_UNIT))


def default_rerank_model(registry: Registry) -> str:
    """The model used when a request names none: the first cross-encoder, else the first model,
    among those the request's API key may use (if it may use none, the first model: ``get`` says 403)."""
    visible = set(request_context.visible_names(registry.names))
    usable = [m for m in registry.models if m.name in visible] or registry.models
    cross = [m for m in usable if m.config.task == "rerank"]
    return (cross or usable)[0].name


def check_rerank_request(
    query: str,
    documents: list[str],
    top_n: int | None,
    settings: Settings,
    *,
    max_chunks_per_doc: int | None = None,
    max_tokens_per_doc: int | None = None,
    param: str = "documents",
) -> None:
    """Reject an empty query or document list, too many documents, and non-positive limits.

    Raises:
        InvalidRequest: 400, with ``param`` naming the offending field.
    """
    if not query or not query.strip():
        raise InvalidRequest("'query' must not be empty", param="query")
    if not documents:
        raise InvalidRequest(f"'{param}' must not be empty", param=param)
    check_list_size(documents, settings.max_rerank_documents, param)
    limits = {
        "top_n": top_n,
        "max_chunks_per_doc": max_chunks_per_doc,
        "max_tokens_per_doc": max_tokens_per_doc,
    }
    for name, value in limits.items():
        if value is not None and value <= 0:
            raise InvalidRequest(f"'{name}' must be a positive integer, got {value}", param=name)


async def rerank(
    registry: Registry,
    model_name: str | None,
    query: str,
    documents: list[str],
    *,
    top_n: int | None = None,
    max_chunks_per_doc: int | None = None,
    max_tokens_per_doc: int | None = None,
    overflow: Overflow = "chunk",
    param: str = "documents",
) -> Reranked:
    """Score ``documents`` against ``query`` and rank them.

    Args:
        model_name: served name or alias; None picks ``default_rerank_model``.
        top_n: keep the best ``top_n`` (None, or more than the document count: all).
        max_chunks_per_doc: chunks scored per long document (default 10).
        max_tokens_per_doc: chunk size cap in model tokens.
        overflow: what long documents get: ``chunk`` (best chunk wins), ``truncate`` (keep the start),
            ``truncate_left`` (keep the end) or ``reject`` (400).
        param: the request field holding the documents, named in errors.

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400), Overloaded (429), RequestTimeout (408),
        EngineFailure (500).
    """
    settings = registry.settings
    served = registry.get(model_name or default_rerank_model(registry))
    engine, runner = served.ready()
    if engine.spec.task == "classify":
        raise InvalidRequest(f"model '{served.name}' is a classifier and cannot rerank; classify with "
                             "/classify or /predict", param="model")
    # a model with dense vectors too (BGE-M3) keeps reranking by cosine, as before its heads were served
    multi_vector = "multi_vector" in engine.spec.outputs and "dense" not in engine.spec.outputs
    if engine.spec.task == "embed" and not multi_vector and "dense" not in engine.spec.outputs:
        gives = " and ".join(engine.spec.outputs)
        raise InvalidRequest(f"model '{served.name}' gives {gives} output and does not rerank; use a "
                             "cross-encoder, a dense or a multi-vector model", param="model")
    check_rerank_request(
        query,
        documents,
        top_n,
        settings,
        max_chunks_per_doc=max_chunks_per_doc,
        max_tokens_per_doc=max_tokens_per_doc,
        param=param,
    )
    chars = len(query) * len(documents) + sum(len(document) for document in documents)  # query in each pair
    estimate = served.admission.estimate(chars, len(documents), engine.spec.max_tokens)
    async with admitted(served, settings, estimate) as ticket:
        inputs: RerankInputs = await served.tokenize(
            prepare_inputs,
            engine,
            served.config,
            query,
            documents,
            overflow=overflow,
            max_chunks_per_doc=max_chunks_per_doc,
            max_tokens_per_doc=max_tokens_per_doc,
            param=param,
            short=len(documents) <= SHORT_INPUTS and chars <= SHORT_CHARS,
        )
        check_token_total(inputs.tokens, settings, param)
        ticket.charge(inputs.tokens)
        if inputs.cross_encoder:
            raw = await runner.run("score", inputs.batch)
        elif multi_vector:
            rows = await runner.run("multi_vector", inputs.batch)
            raw, query_tokens = maxsim_to_first(rows), max(1, len(rows[0]))
        else:
            raw = cosine_to_first(await runner.run("embed", inputs.batch))
    best = np.maximum.reduceat(raw.astype(np.float64), inputs.first_chunk)
    if inputs.cross_encoder:
        relevance = sigmoid(best)
    else:  # MaxSim per query token is a mean similarity, in [-1, 1] as a cosine is
        per_query_token = best / query_tokens if multi_vector else best
        relevance = np.clip((per_query_token + 1) / 2, 0.0, 1.0)
    order = np.argsort(-relevance, kind="stable")[:top_n]
    results = [RankedDocument(int(i), float(relevance[i]), float(best[i])) for i in order]
    return Reranked(results, inputs.tokens, len(raw), model_name or served.name)


def cosine_to_first(vectors: np.ndarray) -> np.ndarray:
    """``(n + 1, dim)`` float32, query first -> ``(n,)`` cosine of each following row with the query."""
    unit = l2_normalize(vectors.astype(np.float32))
    return unit[1:] @ unit[0]


def maxsim_to_first(rows: list[np.ndarray]) -> np.ndarray:
    """``[query (q, dim), *chunks (t_i, dim)]`` float32 token vectors -> ``(n,)`` MaxSim of each chunk
    with the query: ``sum over query tokens of max over chunk tokens of their dot product`` (as
    sentence-transformers' ``maxsim``, on the vectors as the model gives them)."""
    query = rows[0].astype(np.float32)
    return np.array([float((query @ chunk.astype(np.float32).T).max(axis=1).sum()) for chunk in rows[1:]],
                    dtype=np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large negative logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))
