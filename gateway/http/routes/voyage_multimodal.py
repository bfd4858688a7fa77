"""Voyage multimodal route: ``POST /v1/multimodalembeddings``, errors in Voyage's ``{"detail"}`` shape.

Spec: https://docs.voyageai.com/reference/multimodal-embeddings-api
"""

from __future__ import annotations

from functools import partial

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.http.error_handlers import register_error_format
from gateway.http.offload import big_response, offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.protocol import voyage_multimodal
from gateway.protocol.voyage_multimodal import MultimodalRequest
from gateway.serving import multimodal, service
from gateway.serving.registry import Registry

register_error_format(["/v1/multimodalembeddings"], voyage_multimodal.error_body)


@post("/v1/multimodalembeddings", status_code=200, before_request=json_only, tags=["Voyage"],
      summary="Multimodal embeddings (Voyage)",
      operation_class=documented(response=voyage_multimodal.MultimodalResponse))
async def multimodal_embeddings(data: MultimodalRequest, state: State, request: Request) -> Response[bytes]:
    """Embed ``inputs`` of text and image segments (Voyage's format and usage object)."""
    return await cancel_on_disconnect(request, _embed(data, state.registry))


async def _embed(data: MultimodalRequest, registry: Registry) -> Response[bytes]:
    items = voyage_multimodal.request_items(data)
    served = await registry.use(data.model)
    engine, _ = served.ready()
    service.check_dimensions(data.output_dimension, engine.spec.dim, param="output_dimension")
    prompt = service.named_prompt(served, data.input_type) if data.input_type else None
    result = await multimodal.embed_items(
        registry, data.model, items, dimensions=data.output_dimension, prompt=prompt,
        truncate=data.truncation, param="inputs",  # None: the model's truncation policy
    )
    encode = partial(voyage_multimodal.to_response, text_tokens=result.text_tokens,
                     image_pixels=result.image_pixels, total_tokens=result.tokens)
    body = await offload(big_response(result.vectors), encode, result.vectors, data, result.model)
    return Response(body, media_type="application/json")


ROUTES = [multimodal_embeddings]
