"""Protocol-neutral embedding logic shared by every embedding route (OpenAI, Cohere, TEI).

Resolves the model, applies limits and prompts, admits the request against the model's in-flight budget
before any work (``admitted``: 429 at once when over it), tokenizes off the event loop, runs the model's
runner for what its embedding cache does not hold (``embedding_cache``), and applies Matryoshka
``dimensions``; one deadline (``request_timeout_s``) covers tokenizing, queueing and the engine. Routes
convert wire requests to these calls and the results back to their wire format.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gateway.config import Settings
from gateway.engines import Engine, InputTooLong, Tokens
from gateway.engines.text.pooling import l2_normalize
from gateway.engines.text.windows import WINDOW_CHARS_PER_TOKEN
from gateway.errors import InvalidRequest, RequestTimeout, UnprocessableInput
from gateway.serving import request_context
from gateway.serving.admission import Ticket
from gateway.serving.embedding_cache import embed_cached
from gateway.serving.prompted import prompted_tokenizer
from gateway.serving.registry import Registry, ServedModel
from gateway.serving.rerank_inputs import rerank_prompts

# Inputs this small (characters, or token ids) are tokenized inline on the event loop when the tokenizer
# is free. With MiniLM's tokenizer a 50-character query takes 0.03 ms, less than the two thread hops it
# saves; the worst 128 characters measured (CJK, one token each) took 0.13 ms. At 256 characters, CJK
# text passes the 256-token limit and its truncation took 0.54 ms: too long to hold the event loop.
TINY_INPUT_CHARS = 128
# Larger requests are tokenized this many inputs at a time, each chunk queued when the previous one is
# done, and requests of at most SHORT_INPUTS inputs and SHORT_CHARS characters go in the tokenizer's short
# lane: a one-text request waits for one chunk of a bulk request (MiniLM: 64 of the bench's mixed texts,
# ~200 characters each, took ~4 ms), not for whole 1,000-text requests (~60 ms each, queued behind one
# another, several times that on a busy machine).
TOKENIZE_CHUNK = 64
SHORT_INPUTS = 8
SHORT_CHARS = 4096


@dataclass(slots=True)
class Embeddings:
    """Embedding results in input order.

    Attributes:
        vectors: ``(n, dim)`` float32 (``dim`` is the requested ``dimensions`` or the native size).
        tokens: input tokens consumed, in the model's own tokens (after truncation).
        model: the served name that was requested.
    """

    vectors: np.ndarray
    tokens: int
    model: str


def check_list_size(items: list, limit: int, param: str) -> None:
    """Raises InvalidRequest (naming ``param``) when ``items`` holds more than ``limit`` entries."""
    if len(items) > limit:
        raise InvalidRequest(f"'{param}' has {len(items)} items; at most {limit} are allowed", param=param)


def check_inputs(texts: list[str] | list[str | list[int]], settings: Settings, param: str = "input") -> None:
    """Reject an empty list, too many inputs, or an empty string (or empty token-id list).

    Raises:
        InvalidRequest: with ``param`` naming the offending field.
    """
    if not texts:
        raise InvalidRequest(f"'{param}' must not be empty", param=param)
    check_list_size(texts, settings.max_inputs_per_request, param)
    blank = (i for i, text in enumerate(texts) if not text or (isinstance(text, str) and not text.strip()))
    empty = next(blank, None)
    if empty is not None:
        raise InvalidRequest(f"'{param}[{empty}]' is empty; every input must contain text", param=param)


def cannot_embed(model_name: str, task: str) -> InvalidRequest:
    """The 400 for an embedding request naming a model that does not embed (a reranker, a classifier)."""
    what = {"rerank": "a reranker", "classify": "a classifier"}.get(task, f"a '{task}' model")
    return InvalidRequest(f"model '{model_name}' is {what} and cannot embed", param="model")


def default_embed_model(registry: Registry) -> str:
    """The model used when a request names none: the first embedding model, else the first model."""
    embedders = [m for m in registry.models if m.config.task == "embed"]
    return (embedders or registry.models)[0].name


def named_prompt(served: ServedModel, name: str) -> str | None:
    """The prompt ``served`` prepends for ``name``, or None when it has none.

    ``query`` and ``document`` follow the configured ``query_prompt`` / ``document_prompt``, else the
    model's own (as reranking does); other names come from the model's sentence-transformers prompts.

    Raises:
        NotReady: the model is not loaded (503).
    """
    engine, _ = served.ready()
    if name in ("query", "document"):
        query, document = rerank_prompts(engine, served.config)
        return (query if name == "query" else document) or None
    return engine.spec.prompts.get(name)


OUTPUT_ROUTES = {
    "dense": "/v1/embeddings, /embed and every other embedding route",
    "sparse": "POST /embed_sparse (TEI) or /v1/embeddings",
    "multi_vector": "POST /embed_all (TEI), /pooling (vLLM) or a rerank route",
}


def check_output(model_name: str, outputs: tuple[str, ...], wanted: str, param: str = "model") -> None:
    """Raises InvalidRequest (naming ``param``) when the model does not produce the ``wanted`` output,
    saying which outputs it gives and the routes that serve them."""
    if wanted not in outputs:
        where = "; ".join(f"{o}: {OUTPUT_ROUTES[o]}" for o in outputs if o in OUTPUT_ROUTES)
        raise InvalidRequest(f"model '{model_name}' gives {' and '.join(outputs)} output, not {wanted}"
                             + (f" ({where})" if where else ""), param=param)


def check_positive(value: int | None, param: str) -> int | None:
    """``value`` when None or at least 1. Raises InvalidRequest (naming ``param``) otherwise."""
    if value is not None and value < 1:
        raise InvalidRequest(f"'{param}' must be a positive integer, got {value}", param=param)
    return value


def check_dimensions(dimensions: int | None, native: int, param: str = "dimensions") -> None:
    """Validate a Matryoshka size: ``1..native``.

    Raises:
        InvalidRequest: out of range, with ``param``.
    """
    if dimensions is not None and not 1 <= dimensions <= native:
        raise InvalidRequest(
            f"'{param}' must be between 1 and {native} for this model, got {dimensions}", param=param
        )


def finish_vectors(raw: np.ndarray, model_normalizes: bool, dimensions: int | None = None,
                   normalize: bool | None = None) -> np.ndarray:
    """Engine output ``(n, dim)`` -> the vectors a request gets: ``(n, dimensions or dim)`` float32.

    Matryoshka truncation keeps the first ``dimensions`` columns. ``normalize`` True L2-normalizes the
    result, False returns it as the model computed it (TEI ``normalize: false``), None does what the
    model does, and re-normalizes truncated vectors (OpenAI ``dimensions``, Cohere ``output_dimension``).
    """
    truncated = dimensions is not None and dimensions != raw.shape[1]
    vectors = raw[:, :dimensions] if truncated else raw
    if normalize is None:
        normalize = model_normalizes or truncated
    return l2_normalize(vectors) if normalize else np.ascontiguousarray(vectors, dtype=np.float32)


async def embed_texts(
    registry: Registry,
    model_name: str,
    texts: list[str] | list[str | list[int]],
    *,
    dimensions: int | None = None,
    prompt: str | None = None,
    truncate: bool | None = None,
    max_tokens: int | None = None,
    truncation_side: Literal["right", "left"] = "right",
    normalize: bool | None = None,
    param: str = "input",
) -> Embeddings:
    """Embed texts with a served model.

    Args:
        model_name: served name or alias.
        texts: non-empty texts; an item may also be a list of the model's own token ids (TEI), used as
            it is but for truncation (``Engine.tokens_from_ids``), and never given the ``prompt``.
        dimensions: Matryoshka size (1..native) or None for the native size.
        prompt: text prepended to every input (e.g. the model's query instruction).
        truncate: override the model's truncation policy (True: cut at the limit, False: reject).
        max_tokens: a per-request token limit below the model's (special tokens included).
        truncation_side: ``right`` keeps the start of a long input, ``left`` keeps its end.
        normalize: L2-normalize (True), return the model's raw output (False), or do what the model
            does (None); see ``finish_vectors``.

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400: bad input, too long, wrong model
        type), Overloaded (429), RequestTimeout (408), EngineFailure (500).
    """
    settings = registry.settings
    served = registry.get(model_name)
    engine, runner = served.ready()
    if engine.spec.task != "embed":
        raise cannot_embed(model_name, engine.spec.task)
    check_output(model_name, engine.spec.outputs, "dense")
    check_inputs(texts, settings, param)
    check_dimensions(dimensions, engine.spec.dim)
    estimate, chars = estimate_tokens(served, texts, prompt)
    async with admitted(served, settings, estimate, chars=chars) as ticket:
        tokens = await tokenize(served, texts, truncate, settings, param, max_tokens=max_tokens,
                                truncation_side=truncation_side, prompt=prompt)
        ticket.charge(sum(len(t) for t in tokens))
        raw = await embed_tokens(served, tokens, settings)
    vectors = finish_vectors(raw, engine.spec.normalize, dimensions, normalize)
    return Embeddings(vectors, sum(len(t) for t in tokens), model_name)


def estimate_tokens(served: ServedModel, texts: list[str] | list[str | list[int]],
                    prompt: str | None = None) -> tuple[int, int]:
    """The tokens ``texts`` will hold, before tokenizing them (``Admission.estimate``; a token-id list
    counts its length), and the characters of a text-only list (0 when it holds token ids: nothing to
    learn the characters-per-token ratio from)."""
    engine, _ = served.ready()
    strings = [text for text in texts if isinstance(text, str)]
    chars = sum(len(text) + len(prompt or "") for text in strings)
    ids = sum(len(text) for text in texts if not isinstance(text, str))
    estimate = served.admission.estimate(chars, len(strings), engine.spec.max_tokens) if strings else 0
    return estimate + ids, 0 if ids else chars


@asynccontextmanager
async def admitted(served: ServedModel, settings: Settings, estimate: int,
                   chars: int = 0) -> AsyncIterator[Ticket]:
    """Admit a request estimated at ``estimate`` tokens (before tokenizing it) against the model's
    in-flight budget (``gateway.serving.admission``), and run the block under the request's one deadline:
    tokenizing, queueing and the engine together get ``request_timeout_s``. Charge the ticket its real
    tokens once known; it is released when the block exits, however it exits.

    Raises:
        Overloaded: over the budget (429 + Retry-After), before any work.
        RequestTimeout: the deadline passed (408); queued work of the request is dropped.
    """
    _, runner = served.ready()
    speed = runner.stats.tokens_per_s
    ticket = served.admission.admit(
        estimate,
        budget=settings.max_queue_tokens * (getattr(runner, "running_replicas", None) or 1),
        max_wait_s=settings.max_queue_wait_s,
        tokens_per_s=speed * getattr(runner, "lanes", 1) if speed else None,
        name=served.name,
        chars=chars,
    )
    try:
        async with asyncio.timeout(settings.request_timeout_s) as deadline:
            yield ticket
    except TimeoutError:
        if not deadline.expired():
            raise
        raise RequestTimeout(f"the request did not finish within {settings.request_timeout_s:g} s") from None
    finally:
        ticket.release()


async def embed_tokens(served: ServedModel, tokens: list[Tokens], settings: Settings) -> np.ndarray:
    """Engine vectors ``(n, dim)`` float32 of prepared inputs, native size and not yet normalized: from
    the model's embedding cache where it holds them, else from its runner (repeated inputs run once).
    Call it inside ``admitted``, whose deadline covers it. See ``gateway.serving.embedding_cache``.

    Raises:
        Overloaded (429), EngineFailure (500).
    """
    _, runner = served.ready()
    return await embed_cached(served, tokens, lambda todo: runner.run("embed", todo))


async def tokenize(
    served: ServedModel,
    texts: list[str] | list[str | list[int]],
    truncate: bool | None,
    settings: Settings,
    param: str = "input",
    *,
    max_tokens: int | None = None,
    truncation_side: Literal["right", "left"] = "right",
    prompt: str | None = None,
    task: str | None = None,
) -> list[Tokens]:
    """Tokenize texts (and take token-id lists) off the event loop (inline only when they are tiny, see
    ``ServedModel.tokenize``; in chunks of ``TOKENIZE_CHUNK`` inputs when large, small requests first),
    applying the truncation policy and token limit. ``task`` (``query`` / ``document``) is passed to
    engines with asymmetric sides (``Tokens.task``); None is never passed. ``prompt`` is applied to the
    texts as the model takes prompts (``prompted.py``); token-id lists never get it.

    Raises:
        InvalidRequest: an input is too long under the ``reject`` policy, a token id is outside the
            vocabulary, a text the model cannot embed, or the request exceeds ``max_tokens_per_request``.
    """
    if truncate is None:
        truncate = served.config.truncation == "truncate"
    # only non-default options are passed, so an engine without them still serves plain requests
    options = {k: v for k, v in [("max_tokens", max_tokens), ("truncation_side", truncation_side),
                                 ("task", task)] if v not in (None, "right")}
    chars = sum(len(text) + len(prompt or "") for text in texts)
    tiny, short = chars <= TINY_INPUT_CHARS, len(texts) <= SHORT_INPUTS and chars <= SHORT_CHARS
    tokens: list[Tokens] = []
    try:
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            try:
                tokens += await served.tokenize(_tokenize_mixed, served.engine,
                                                texts[start:start + TOKENIZE_CHUNK], param, prompt,
                                                truncate=truncate, tiny=tiny, short=short, **options)
            except InputTooLong as exc:  # its index within the chunk -> within the request
                raise InputTooLong(start + exc.index, exc.length, exc.limit, exc.at_least) from None
    except InputTooLong as exc:
        raise too_long_error(exc, param) from None
    except UnprocessableInput as exc:  # e.g. a vision-language model's image token in a text; nothing else
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None  # is the client's fault
    check_token_total(sum(len(t) for t in tokens), settings, param)
    return tokens


def _tokenize_mixed(engine: Engine, inputs: list[str | list[int]], param: str, prompt: str | None = None,
                    **options) -> list[Tokens]:
    """Texts through ``engine.tokenize`` (with ``prompt``, see ``prompted.py``), token-id lists through
    ``engine.tokens_from_ids``, in input order.

    Raises:
        InputTooLong: with the input's index in ``inputs``.
        InvalidRequest: a token id outside the vocabulary (naming ``param``).
        UnprocessableInput: a text the model cannot embed.
    """
    tokenize_texts = prompted_tokenizer(engine, prompt)
    at_ids = [i for i, item in enumerate(inputs) if not isinstance(item, str)]
    if not at_ids:
        return tokenize_texts(inputs, **options)
    at_texts = [i for i, item in enumerate(inputs) if isinstance(item, str)]
    out: list[Tokens | None] = [None] * len(inputs)
    for positions, convert in ((at_texts, tokenize_texts), (at_ids, engine.tokens_from_ids)):
        if not positions:
            continue
        try:
            converted = convert([inputs[i] for i in positions], **options)
        except InputTooLong as exc:
            raise InputTooLong(positions[exc.index], exc.length, exc.limit, exc.at_least) from None
        except UnprocessableInput as exc:  # from tokens_from_ids: an id outside the vocabulary
            if convert is tokenize_texts:
                raise
            raise InvalidRequest(f"'{param}' holds an invalid token id: {exc}", param=param) from None
        for i, tokens in zip(positions, converted, strict=True):
            out[i] = tokens
    return out


def too_long_error(exc: InputTooLong, param: str) -> InvalidRequest:
    """The 400 (``context_length_exceeded``) for an input over the model's limit under ``reject``."""
    return InvalidRequest(
        f"'{param}[{exc.index}]' is {exc.length_text} tokens long; this model accepts at most {exc.limit}",
        param=param,
        code="context_length_exceeded",
    )


def check_untruncated_size(texts: list[str], settings: Settings, param: str = "input") -> None:
    """For calls that tokenize texts in full (TEI ``/tokenize``): refuse more characters than
    ``max_tokens_per_request`` tokens of any real text hold (``WINDOW_CHARS_PER_TOKEN`` each), before
    tokenizing them, so such a call costs at most what the largest embedding request does.

    Raises:
        InvalidRequest: too many characters.
    """
    allowed = settings.max_tokens_per_request * WINDOW_CHARS_PER_TOKEN
    if sum(len(text) for text in texts) > allowed:
        raise InvalidRequest(f"'{param}' holds more than {allowed} characters, more than the "
                             f"{settings.max_tokens_per_request} tokens a request may hold", param=param)


def check_token_total(total: int, settings: Settings, param: str = "input") -> None:
    """Admit a request's ``total`` model tokens: every path calls this once tokens are known, before the
    model runs.

    Raises:
        InvalidRequest: the request holds more than ``max_tokens_per_request`` tokens.
        RateLimited: its API key has fewer tokens per minute left (429; ``gateway.serving.rate_limits``).
    """
    if total > settings.max_tokens_per_request:
        raise InvalidRequest(
            f"the request holds {total} tokens; at most {settings.max_tokens_per_request} are allowed",
            param=param,
        )
    request_context.charge_tokens(total)
