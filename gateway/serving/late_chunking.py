"""Late chunking as a service call: the inputs of one request embedded as one sequence, pooled per input.

See ``gateway.engines.text.late_chunking`` for the definition (Jina's ``late_chunking``). The joined sequence
must fit the model's context: it is never truncated, since that would drop whole inputs.
"""

from __future__ import annotations

from gateway.engines import InputTooLong
from gateway.errors import InvalidRequest, UnprocessableInput
from gateway.serving import request_context
from gateway.serving.registry import Registry
from gateway.serving.service import (
    Embeddings,
    admitted,
    cannot_embed,
    check_dimensions,
    check_inputs,
    check_token_total,
    estimate_tokens,
    finish_vectors,
)


async def embed_late_chunked(
    registry: Registry,
    model_name: str,
    texts: list[str],
    *,
    prompt: str | None = None,
    dimensions: int | None = None,
    normalize: bool | None = None,
    param: str = "input",
) -> Embeddings:
    """Embed ``texts`` together: ``(n, dimensions or dim)`` float32, one row per text, in input order.

    Args:
        prompt: prepended once, before the first text (it belongs to no text's span).
        dimensions / normalize: as for ``service.embed_texts``.

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400: not an embedder, not mean-pooled or an
        engine without token-level outputs, an empty input, or the joined inputs longer than the model's
        context), Overloaded (429), RequestTimeout (408), EngineFailure (500).
    """
    settings = registry.settings
    served = registry.get(model_name)
    engine, runner = served.ready()
    spec = engine.spec
    if spec.task != "embed":
        raise cannot_embed(model_name, spec.task)
    if spec.pooling != "mean" or not hasattr(engine, "embed_spans"):
        raise InvalidRequest(f"'late_chunking' needs a mean-pooled model; '{model_name}' pools with "
                             f"'{spec.pooling}' on the {spec.engine} engine", param="late_chunking")
    check_inputs(texts, settings, param)
    check_dimensions(dimensions, spec.dim)
    estimate, _ = estimate_tokens(served, texts, prompt)
    async with admitted(served, settings, min(estimate, spec.max_tokens)) as ticket:
        try:
            joined = await served.tokenize(engine.tokenize_joined, texts, prompt=prompt)
            length = str(len(joined))
        except InputTooLong as exc:  # the engine stopped counting once past the context
            joined, length = None, exc.length_text
        except UnprocessableInput as exc:  # an input without tokens
            raise InvalidRequest(f"'{param}': {exc}", param=param) from None
        if joined is None or len(joined) > spec.max_tokens:
            raise InvalidRequest(
                f"'late_chunking' embeds the {len(texts)} inputs as one sequence of {length} tokens; this "
                f"model's context holds at most {spec.max_tokens}: send fewer or shorter inputs",
                param=param, code="context_length_exceeded",
            )
        check_token_total(len(joined), settings, param)
        ticket.charge(len(joined))
        raw = await runner.run("spans", [joined])
    request_context.count_cache_hits(0)  # chunk vectors depend on their neighbours: never cached
    vectors = finish_vectors(raw[0], spec.normalize, dimensions, normalize)
    return Embeddings(vectors, len(joined), model_name)
