"""Protocol-neutral classification, shared by vLLM's ``/classify`` and TEI's ``/predict``.

An input is a text, or a ``(text, text_pair)`` pair for NLI-style classifiers; the model's class logits
``(n, labels)`` come from the runner (``classify`` kind: ``Engine.classify``), and the routes turn them
into probabilities (``class_probabilities``: softmax over the labels, sigmoid for a single logit, as vLLM
and TEI do). A one-logit cross-encoder is served too (TEI ``/predict`` takes rerankers): its logit is its
``score``. Admission, the token budget, per-key token limits and the request deadline are the
embedding routes' (``service.admitted``, ``service.check_token_total``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gateway.engines import Engine, InputTooLong, Tokens
from gateway.errors import InvalidRequest, UnprocessableInput
from gateway.serving import request_context
from gateway.serving.registry import Registry
from gateway.serving.service import (
    SHORT_CHARS,
    SHORT_INPUTS,
    admitted,
    check_list_size,
    check_token_total,
    too_long_error,
)

ClassifyInput = str | tuple[str, str]


@dataclass(slots=True)
class Classified:
    """Class logits of a request's inputs, in input order.

    Attributes:
        logits: ``(n, labels)`` float32 raw logits.
        labels: the label names, in logit order.
        tokens: model tokens processed (special tokens included, after truncation).
        model: the served name requested.
    """

    logits: np.ndarray
    labels: tuple[str, ...]
    tokens: int
    model: str


def default_classify_model(registry: Registry, *, rerankers: bool = False) -> str:
    """The model a request naming none gets: the first classifier (else, with ``rerankers``, the first
    cross-encoder), among those the request's API key may use.

    Raises:
        InvalidRequest: no such model is served (400).
    """
    visible = set(request_context.visible_names(registry.names))
    usable = [m for m in registry.models if m.name in visible] or registry.models
    for task in ("classify", "rerank") if rerankers else ("classify",):
        if found := [m for m in usable if m.config.task == task]:
            return found[0].name
    raise InvalidRequest("no served model classifies (task = 'classify'); name one with 'model'",
                         param="model")


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """``(n, labels)`` logits -> ``(n, labels)`` float64 probabilities: softmax over the labels, or the
    sigmoid of a single logit (vLLM's and TEI's activation for one-label heads)."""
    values = logits.astype(np.float64)
    if values.shape[1] == 1:
        return 0.5 * (1.0 + np.tanh(0.5 * values))
    exp = np.exp(values - values.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def check_classify_inputs(inputs: list[ClassifyInput], limit: int, param: str) -> None:
    """Reject an empty list, more than ``limit`` inputs, or an empty text.

    Raises:
        InvalidRequest: naming ``param``.
    """
    if not inputs:
        raise InvalidRequest(f"'{param}' must not be empty", param=param)
    check_list_size(inputs, limit, param)
    for i, item in enumerate(inputs):
        texts = (item,) if isinstance(item, str) else item
        if any(not text.strip() for text in texts):
            raise InvalidRequest(f"'{param}[{i}]' is empty; every input must contain text", param=param)


async def classify(
    registry: Registry,
    model_name: str,
    inputs: list[ClassifyInput],
    *,
    truncate: bool | None = None,
    truncation_side: Literal["right", "left"] = "right",
    max_tokens: int | None = None,
    param: str = "input",
) -> Classified:
    """Class logits of ``inputs`` from a classifier (or a one-logit cross-encoder).

    Args:
        model_name: served name or alias.
        inputs: texts, or ``(text, text_pair)`` pairs (both may mix in one request).
        truncate: override the model's truncation policy (True: cut at the limit, False: reject).
        truncation_side: which end of a long single text is cut (pairs lose tokens from their longer side).
        max_tokens: a per-request limit below the model's for single texts (special tokens included).
        param: the request field holding the inputs, named in errors.

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400: not a classifier, bad or too long input,
        too many tokens), Overloaded / RateLimited (429), RequestTimeout (408), EngineFailure (500).
    """
    settings = registry.settings
    served = registry.get(model_name)
    engine, runner = served.ready()
    outputs = engine.spec.outputs
    if "classify" not in outputs and "rerank" not in outputs:
        raise InvalidRequest(f"model '{model_name}' is not a classifier (it gives {', '.join(outputs)}); "
                             "name a model served with task = 'classify'", param="model")
    check_classify_inputs(inputs, settings.max_inputs_per_request, param)
    prompted = getattr(engine, "rerank_prompt", None) is not None  # Qwen3-style: a query and a document
    if "classify" not in outputs and prompted and any(isinstance(item, str) for item in inputs):
        raise InvalidRequest(f"model '{model_name}' scores text pairs only; send [text, text_pair] inputs",
                             param=param)
    if truncate is None:
        truncate = served.config.truncation == "truncate"
    chars = sum(len(item) if isinstance(item, str) else len(item[0]) + len(item[1]) for item in inputs)
    estimate = served.admission.estimate(chars, len(inputs), engine.spec.max_tokens)
    short = len(inputs) <= SHORT_INPUTS and chars <= SHORT_CHARS
    async with admitted(served, settings, estimate, chars=chars) as ticket:
        try:
            tokens = await served.tokenize(tokenize_inputs, engine, inputs, truncate, truncation_side,
                                           max_tokens, short=short)
        except InputTooLong as exc:
            raise too_long_error(exc, param) from None
        except UnprocessableInput as exc:  # a text the tokenizer refuses: the client's input
            raise InvalidRequest(f"'{param}': {exc}", param=param) from None
        total = sum(len(t) for t in tokens)
        check_token_total(total, settings, param)
        ticket.charge(total)
        if "classify" in outputs:
            logits = await runner.run("classify", tokens)
        else:  # a cross-encoder: its one logit
            logits = (await runner.run("score", tokens)).reshape(-1, 1)
    labels = engine.spec.labels or tuple(f"LABEL_{i}" for i in range(logits.shape[1]))
    return Classified(logits, labels, total, model_name)


def tokenize_inputs(engine: Engine, inputs: list[ClassifyInput], truncate: bool,
                    truncation_side: Literal["right", "left"] = "right",
                    max_tokens: int | None = None) -> list[Tokens]:
    """Texts through ``engine.tokenize``, pairs through ``engine.tokenize_pairs`` (segment ids), in input
    order. Call it through ``ServedModel.tokenize``.

    Raises:
        InputTooLong: with the input's index in ``inputs``.
    """
    out: list[Tokens | None] = [None] * len(inputs)
    singles = [i for i, item in enumerate(inputs) if isinstance(item, str)]
    pairs = [i for i, item in enumerate(inputs) if not isinstance(item, str)]
    # only non-default options are passed, as service.tokenize does
    side = {k: v for k, v in [("max_tokens", max_tokens), ("truncation_side", truncation_side)]
            if v not in (None, "right")}
    for positions, convert in ((singles, lambda items: engine.tokenize(items, truncate=truncate, **side)),
                               (pairs, lambda items: engine.tokenize_pairs(items, truncate=truncate))):
        if not positions:
            continue
        try:
            converted = convert([inputs[i] for i in positions])
        except InputTooLong as exc:
            raise InputTooLong(positions[exc.index], exc.length, exc.limit, exc.at_least) from None
        for i, tokens in zip(positions, converted, strict=True):
            out[i] = tokens
    return out
