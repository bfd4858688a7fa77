"""Cohere embed routes: ``POST /v1/embed`` and ``POST /v2/embed``, errors in Cohere's ``{"message"}`` shape.

Specs: https://docs.cohere.com/v1/reference/embed, https://docs.cohere.com/reference/embed
"""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.errors import InvalidRequest
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import big_response, offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.protocol import cohere_embed
from gateway.protocol.cohere_embed import EmbedRequest, EmbedRequestV2
from gateway.serving import multimodal, service
from gateway.serving.registry import Registry

register_error_format(["/v1/embed", "/v2/embed"], cohere_embed.error_body)


@post("/v1/embed", status_code=200, before_request=json_only, tags=["Cohere"], summary="Embed (Cohere v1)",
      operation_class=documented(
          response=cohere_embed.EmbedFloatsResponse | cohere_embed.EmbedByTypeResponse))
async def embed_v1(data: EmbedRequest, state: State, request: Request) -> Response[bytes]:
    """Embed ``texts`` or ``images``: ``embeddings_floats``, or ``embeddings_by_type`` when
    ``embedding_types`` are set."""
    return await cancel_on_disconnect(request, _embed(data, state.registry, api_version="1"))


@post("/v2/embed", status_code=200, before_request=json_only, tags=["Cohere"], summary="Embed (Cohere v2)",
      operation_class=documented(response=cohere_embed.EmbedByTypeResponse))
async def embed_v2(data: EmbedRequestV2, state: State, request: Request) -> Response[bytes]:
    """Embed ``texts``, ``images`` or ``inputs``, by type; also ``max_tokens`` and Matryoshka
    ``output_dimension``."""
    if data.max_tokens is not None and data.max_tokens < 1:
        raise InvalidRequest("'max_tokens' must be at least 1", param="max_tokens")
    return await cancel_on_disconnect(request, _embed(data, state.registry, api_version="2"))


async def _embed(data: EmbedRequest, registry: Registry, api_version: str) -> Response[bytes]:
    """Shared by v1 and v2 (v2-only fields read with defaults)."""
    items, param = cohere_embed.request_items(data)
    model = data.model or service.default_embed_model(registry)
    served = await registry.use(model)
    engine, _ = served.ready()
    output_dimension = getattr(data, "output_dimension", None)
    service.check_dimensions(output_dimension, engine.spec.dim, param="output_dimension")
    prompt = None
    if data.input_type in cohere_embed.PROMPT_NAMES:  # "image" selects no prompt
        prompt = service.named_prompt(served, cohere_embed.PROMPT_NAMES[data.input_type])
    truncate, side = cohere_embed.truncation(data.truncate)
    result = await multimodal.embed_items(
        registry, model, items, dimensions=output_dimension, prompt=prompt, truncate=truncate,
        max_tokens=getattr(data, "max_tokens", None), truncation_side=side, param=param,
    )
    texts = [item.text for item in items if not item.images]
    images = [cohere_embed.ImageMeta(i.width, i.height, i.format, i.bit_depth) for i in result.images]
    body = await offload(big_response(result.vectors), cohere_embed.to_embed_response, result.vectors,
                         texts, data.embedding_types, result.text_tokens, api_version, images or None,
                         result.image_tokens)
    return Response(body, media_type="application/json")


ROUTES = [embed_v1, embed_v2]
