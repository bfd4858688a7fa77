"""Protocol-neutral pair scores, for vLLM's ``/score``: one score per ``(text_1, text_2)`` pair.

What a score is depends on what the model gives (``ModelSpec.outputs``), as in vLLM:

- ``rerank`` (a cross-encoder): the activation of its logit, ``sigmoid(logit)`` (vLLM's default for a
  one-label head), each pair read together by the model;
- ``dense`` (a bi-encoder): the cosine of the two texts' embeddings (each distinct text embedded once,
  without prompts, as vLLM does);
- ``multi_vector`` (late interaction, ColBERT): MaxSim, the sum over ``text_1``'s token vectors of the best
  dot product with ``text_2``'s, computed by the rerank path (``rerank.rerank``'s raw score: each side
  prepared as the model prepares queries and documents), as vLLM scores late-interaction models;
- a classifier has no pair score: 400.

Admission, the token budget and per-key token limits are the other routes' (``service.admitted``,
``check_token_total``; the bi-encoder path goes through ``service.embed_texts`` and its cache).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.engines import InputTooLong
from gateway.engines.text.pooling import l2_normalize
from gateway.errors import InvalidRequest
from gateway.serving import request_context, rerank, service
from gateway.serving.registry import Registry, ServedModel


@dataclass(slots=True)
class Scores:
    """Pair scores in pair order.

    Attributes:
        scores: ``(n,)`` float64: sigmoid of a cross-encoder's logit, a bi-encoder's cosine, or a
            multi-vector model's MaxSim.
        tokens: model tokens processed (special tokens included, after truncation).
        model: the served name used.
    """

    scores: np.ndarray
    tokens: int
    model: str


def default_score_model(registry: Registry) -> str:
    """The model a request naming none gets: the first cross-encoder, else the first embedder, among those
    the request's API key may use (else the first model: ``get`` then answers 403 or 400)."""
    visible = set(request_context.visible_names(registry.names))
    usable = [m for m in registry.models if m.name in visible] or registry.models
    for task in ("rerank", "embed"):
        if found := [m for m in usable if m.config.task == task]:
            return found[0].name
    return usable[0].name


async def score_pairs(registry: Registry, model_name: str, pairs: list[tuple[str, str]], *,
                      param: str = "text_2") -> Scores:
    """Score ``pairs`` with a served model (see the module docstring for what a score is).

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400: a model without pair scores, an empty
        text, too many pairs or tokens, a text too long under the ``reject`` policy), Overloaded /
        RateLimited (429), RequestTimeout (408), EngineFailure (500).
    """
    served = registry.get(model_name)
    engine, _ = served.ready()
    service.check_list_size(pairs, registry.settings.max_inputs_per_request, param)
    for i, (first, second) in enumerate(pairs):
        if not first.strip() or not second.strip():
            raise InvalidRequest(f"pair {i} holds an empty text; every text must contain text", param=param)
    for output, scorer in SCORERS.items():
        if output in engine.spec.outputs:
            return await scorer(registry, served, pairs, param)
    raise InvalidRequest(f"model '{model_name}' gives {', '.join(engine.spec.outputs)}, not pair scores: "
                         "name an embedder or a one-logit cross-encoder", param="model")


async def _cross_encoder(registry: Registry, served: ServedModel, pairs: list[tuple[str, str]],
                         param: str) -> Scores:
    engine, runner = served.ready()
    settings = registry.settings
    truncate = served.config.truncation == "truncate"
    chars = sum(len(a) + len(b) for a, b in pairs)
    estimate = served.admission.estimate(chars, len(pairs), engine.spec.max_tokens)
    short = len(pairs) <= service.SHORT_INPUTS and chars <= service.SHORT_CHARS
    async with service.admitted(served, settings, estimate, chars=chars) as ticket:
        try:
            tokens = await served.tokenize(engine.tokenize_pairs, pairs, truncate=truncate, short=short)
        except InputTooLong as exc:
            raise service.too_long_error(exc, param) from None
        total = sum(len(t) for t in tokens)
        service.check_token_total(total, settings, param)
        ticket.charge(total)
        logits = await runner.run("score", tokens)
    return Scores(rerank.sigmoid(logits.astype(np.float64)), total, served.name)


async def _bi_encoder(registry: Registry, served: ServedModel, pairs: list[tuple[str, str]],
                      param: str) -> Scores:
    texts = list(dict.fromkeys(text for pair in pairs for text in pair))  # each distinct text once
    result = await service.embed_texts(registry, served.name, texts, param=param)
    row = {text: i for i, text in enumerate(texts)}
    unit = l2_normalize(result.vectors).astype(np.float64)
    first, second = [row[a] for a, _ in pairs], [row[b] for _, b in pairs]
    scores = np.einsum("ij,ij->i", unit[first], unit[second])
    return Scores(scores, result.tokens, served.name)


async def _late_interaction(registry: Registry, served: ServedModel, pairs: list[tuple[str, str]],
                            param: str) -> Scores:
    """MaxSim per pair, from the rerank path: one call per distinct ``text_1`` (long texts truncated)."""
    scores, tokens = np.empty(len(pairs), dtype=np.float64), 0
    groups: dict[str, list[int]] = {}
    for i, (first, _) in enumerate(pairs):
        groups.setdefault(first, []).append(i)
    for first, positions in groups.items():
        ranked = await rerank.rerank(registry, served.name, first, [pairs[i][1] for i in positions],
                                     overflow="truncate", param=param)
        for document in ranked.results:
            scores[positions[document.index]] = document.raw_score
        tokens += ranked.tokens
    return Scores(scores, tokens, served.name)


# output -> how a pair is scored with it, first match in this order wins (a model giving dense vectors
# beside token vectors, BGE-M3, scores by cosine, as it reranks)
SCORERS = {"rerank": _cross_encoder, "dense": _bi_encoder, "multi_vector": _late_interaction}
