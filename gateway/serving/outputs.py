"""Ragged outputs as service calls: sparse vectors and multi-vector (per-token) embeddings of texts.

Like ``service.embed_texts`` (model lookup, limits, prompts, admission, tokenizing off the event loop,
one deadline), but for the outputs whose rows differ in size per input (``engines.RAGGED_OUTPUTS``), run
through the model's runner as the kinds ``sparse`` / ``multi_vector`` (``Engine.forward``), through the
model's embedding cache (keys name the output kind; ``embedding_cache.pack``).

Memory bound of per-token output: a multi-vector row is ``tokens x dim`` float32, so a request's output
is at most ``max_tokens_per_request x dim`` floats (300,000 x 128 x 4 bytes = 154 MB at the defaults);
a request whose tokens times ``dim`` pass ``MAX_OUTPUT_FLOATS`` is refused with a 400 before the forward
pass. Sparse rows hold at most the vocabulary size each (in practice tens to a few hundred terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gateway.engines import SparseVector
from gateway.errors import InvalidRequest
from gateway.serving.embedding_cache import embed_cached
from gateway.serving.registry import Registry
from gateway.serving.service import (
    admitted,
    check_inputs,
    check_output,
    estimate_tokens,
    tokenize,
)

MAX_OUTPUT_FLOATS = 64_000_000  # per request, multi-vector output: 256 MB of float32
Task = Literal["query", "document"]


@dataclass(slots=True)
class RaggedEmbeddings:
    """Per-input rows in input order: ``SparseVector``s (sparse) or ``(tokens, dim)`` float32 arrays
    (multi-vector); ``tokens``: input tokens consumed (usage); ``model``: the served name requested."""

    rows: list
    tokens: int
    model: str


def top_k(row: SparseVector, k: int | None) -> SparseVector:
    """The ``k`` terms of largest magnitude, indices still ascending (sentence-transformers'
    ``select_max_active_dims``); the row itself when it has at most ``k`` terms or ``k`` is None."""
    if k is None or len(row) <= k:
        return row
    keep = np.sort(np.argpartition(-np.abs(row.values), k - 1)[:k])
    return SparseVector(row.indices[keep], row.values[keep])


async def ragged_texts(
    registry: Registry,
    model_name: str,
    texts: list[str] | list[str | list[int]],
    output: Literal["sparse", "multi_vector"],
    *,
    prompt: str | None = None,
    task: Task | None = None,
    truncate: bool | None = None,
    truncation_side: Literal["right", "left"] = "right",
    max_active_dims: int | None = None,
    param: str = "input",
) -> RaggedEmbeddings:
    """Sparse or multi-vector embeddings of texts (or token-id lists, TEI) with a served model.

    Args:
        output: ``sparse`` or ``multi_vector``; the model must produce it (``ModelSpec.outputs``).
        prompt: text prepended to every text input (the model's query / document prompt).
        task: the request's input type, for models whose query and document sides differ (an
            inference-free SPLADE ``Router``, a ColBERT query); None: the model's default side.
        truncate / truncation_side: as for ``service.embed_texts``.
        max_active_dims: sparse only: keep the top-k terms of each vector (None: the model's config,
            else the model's own, else every non-zero term).

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400: bad input, too long, a model without
        this output, a multi-vector output over ``MAX_OUTPUT_FLOATS``), Overloaded (429),
        RequestTimeout (408), EngineFailure (500).
    """
    settings = registry.settings
    served = registry.get(model_name)
    engine, runner = served.ready()
    check_output(model_name, engine.spec.outputs, output)
    check_inputs(texts, settings, param)
    estimate, chars = estimate_tokens(served, texts, prompt)
    async with admitted(served, settings, estimate, chars=chars) as ticket:
        tokens = await tokenize(served, texts, truncate, settings, param, truncation_side=truncation_side,
                                prompt=prompt, task=task)
        total = sum(len(t) for t in tokens)
        ticket.charge(total)
        if output == "multi_vector" and total * engine.spec.dim > MAX_OUTPUT_FLOATS:
            raise InvalidRequest(f"the request's {total} tokens would return {total * engine.spec.dim} "
                                 f"floats ({engine.spec.dim} per token); at most {MAX_OUTPUT_FLOATS} are "
                                 "allowed: send fewer or shorter inputs", param=param)
        rows = await embed_cached(served, tokens, lambda todo: runner.run(output, todo), output)
    if output == "sparse":
        k = max_active_dims or served.config.max_active_dims or getattr(engine, "max_active_dims", None)
        rows = [top_k(row, k) for row in rows]
    return RaggedEmbeddings(rows, total, model_name)
