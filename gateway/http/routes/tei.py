"""TEI routes: ``POST /embed`` (also ``POST /``, where ``InferenceClient(model=url)`` posts), ``/tokenize``,
``/decode`` and ``GET /info``; errors in TEI's ``{"error", "error_type"}`` shape.

Spec: https://huggingface.github.io/text-embeddings-inference/. TEI's ``/rerank`` lives in
``gateway.http.routes.rerank``. ``normalize: false`` returns the model's output before its final L2
normalization (for Matryoshka ``dimensions``: truncated, not re-normalized), as TEI does.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State

from gateway import __version__
from gateway.errors import InvalidRequest, UnprocessableInput
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import big_response, offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.http.routes.seed_health import info_fields
from gateway.protocol import tei
from gateway.protocol.openai import float_rows
from gateway.serving import service
from gateway.serving.registry import Registry, ServedModel

BIG_RESPONSE_TOKENS = 1024  # /tokenize answers with more tokens are built off the event loop (~0.5 us each)
TOKEN_SLICE = 4096  # tokens encoded per msgspec call

register_error_format(["/", "/embed", "/tokenize", "/decode", "/info"], tei.error_body)


@post(["/embed", "/"], status_code=200, before_request=json_only, tags=["TEI"], summary="Embed (TEI)",
      operation_class=documented(response=list[list[float]], response_description="one vector per input"))
async def embed(data: tei.EmbedRequest, state: State, request: Request) -> Response[bytes]:
    """Embed ``inputs``; answers a bare list of float lists, in input order."""
    registry: Registry = state.registry
    model = data.model or service.default_embed_model(registry)
    served = await registry.use(model)
    texts = tei.embed_inputs(data.inputs)
    if data.prompt_name is not None and not all(isinstance(text, str) for text in texts):
        raise InvalidRequest("'prompt_name' applies to texts; token-id inputs already hold their final "
                             "tokens", param="prompt_name")
    result = await cancel_on_disconnect(request, service.embed_texts(
        registry, model, texts, dimensions=data.dimensions, prompt=_prompt(served, data.prompt_name),
        truncate=data.truncate, truncation_side=data.truncation_direction.lower(), normalize=data.normalize,
        param="inputs",
    ))
    body = await offload(big_response(result.vectors), _encode_rows, result.vectors)
    return Response(body, media_type="application/json")


def _encode_rows(vectors) -> bytes:
    """``(n, dim)`` float32 -> TEI's bare list of float lists (row by row: see ``float_rows``)."""
    return msgspec.json.encode(float_rows(vectors))


@post("/tokenize", status_code=200, before_request=json_only, tags=["TEI"], summary="Tokenize (TEI)",
      operation_class=documented(response=list[list[tei.SimpleToken]],
                                 response_description="each input's tokens with UTF-8 byte offsets"))
async def tokenize(data: tei.TokenizeRequest, state: State) -> Response[bytes]:
    """The served model's tokens of each input, with UTF-8 byte offsets (untruncated)."""
    registry: Registry = state.registry
    served = await registry.use(data.model or registry.models[0].name)
    engine, _ = served.ready()
    prompt = _prompt(served, data.prompt_name) or ""
    texts = [prompt + text for text in tei.as_list(data.inputs)]
    service.check_inputs(texts, registry.settings, param="inputs")
    service.check_untruncated_size(texts, registry.settings, param="inputs")
    spans = await served.tokenize(engine.tokenize_spans, texts, add_special_tokens=data.add_special_tokens)
    total = sum(len(row) for row in spans)
    service.check_token_total(total, registry.settings, param="inputs")
    body = await offload(total > BIG_RESPONSE_TOKENS, _encode_tokens, texts, spans)
    return Response(body, media_type="application/json")


def _encode_tokens(texts: list[str], spans: list) -> bytes:
    """TEI's ``list[list[SimpleToken]]`` as JSON, encoded ``TOKEN_SLICE`` tokens at a time: up to 300,000
    tokens in one msgspec call would hold the GIL for tens of ms, even from a worker thread."""
    rows = []
    for text, row in zip(texts, spans, strict=True):
        tokens = tei.to_simple_tokens(text, row)
        slices = [msgspec.json.encode(tokens[i:i + TOKEN_SLICE])[1:-1]
                  for i in range(0, len(tokens), TOKEN_SLICE)]
        rows.append(b"[" + b",".join(slices) + b"]")
    return b"[" + b",".join(rows) + b"]"


@post("/decode", status_code=200, before_request=json_only, tags=["TEI"], summary="Decode (TEI)")
async def decode(data: tei.DecodeRequest, state: State) -> list[str]:
    """Token ids of the served model back to text, one string per id list."""
    registry: Registry = state.registry
    served = await registry.use(data.model or registry.models[0].name)
    engine, _ = served.ready()
    try:
        return await served.tokenize(engine.decode, tei.id_lists(data.ids),
                                     skip_special_tokens=data.skip_special_tokens)
    except UnprocessableInput as exc:  # an id outside the vocabulary
        raise tei.TokenizerError(str(exc), param="ids") from None


@get("/info", tags=["TEI"], summary="Model info (TEI)")
async def info(state: State, model: str | None = None) -> tei.Info:
    """TEI's description of the served model (the first one, or ``?model=``)."""
    registry: Registry = state.registry
    served = await registry.use(model or registry.models[0].name)
    engine, runner = served.ready()
    return {**info_fields(served), **msgspec.to_builtins(tei.to_info(  # + tkr-embed's fields
        served.name, served.config.revision, engine.spec, batch_tokens=runner.batch_tokens,
        max_inputs=registry.settings.max_inputs_per_request,
        auto_truncate=served.config.truncation == "truncate", version=__version__,
    ))}


def _prompt(served: ServedModel, name: str | None) -> str | None:
    """The model prompt called ``name`` (TEI's ``prompt_name``). Raises InvalidRequest when it has none."""
    if name is None:
        return None
    prompt = service.named_prompt(served, name)
    if prompt is None:
        known = [n for n in ("query", "document") if service.named_prompt(served, n)]
        known += [n for n in served.engine.spec.prompts if n not in known]
        raise InvalidRequest(f"'prompt_name' {name!r} is not a prompt of this model; its prompts: "
                             f"{', '.join(known) or 'none'}", param="prompt_name")
    return prompt


ROUTES = [embed, tokenize, decode, info]
