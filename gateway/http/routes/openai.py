"""OpenAI routes: ``POST /v1/embeddings`` (also ``/embeddings``) and ``GET /v1/models``.

Spec: https://platform.openai.com/docs/api-reference/embeddings/create
"""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.datastructures import State

from gateway.errors import InvalidRequest
from gateway.http.routes.common import cancel_on_disconnect, json_only, offload
from gateway.protocol import openai
from gateway.protocol.openai import EmbeddingRequest, ModelList
from gateway.protocol.token_ids import decode_token_ids
from gateway.serving import multimodal, request_context, service
from gateway.serving.registry import Registry

BIG_RESPONSE_ROWS = 64  # encode larger responses off the event loop


@post(["/v1/embeddings", "/embeddings"], status_code=200, before_request=json_only, tags=["OpenAI"],
      summary="Create embeddings")  # Litestar answers POST with 201 unless told; OpenAI answers 200
async def create_embeddings(data: EmbeddingRequest, state: State, request: Request) -> Response[bytes]:
    """Embed ``input`` with ``model`` (OpenAI wire format; float, base64 or, as an extension, int8 / uint8 /
    binary / ubinary rows; Matryoshka ``dimensions``; as an extension, image and text part objects)."""
    registry: Registry = state.registry
    items = openai.input_items(data.input)  # part objects (images): the multimodal path
    if items is not None:
        work = multimodal.embed_items(registry, data.model, items, dimensions=data.dimensions)
        rows = len(items)
    else:
        texts, token_lists = openai.split_input(data.input)
        if token_lists:
            texts = await offload(len(token_lists) > 16, _decode_all, token_lists)
        work = service.embed_texts(registry, data.model, texts, dimensions=data.dimensions)
        rows = len(texts)
    result = await cancel_on_disconnect(request, work)
    body = await offload(
        rows > BIG_RESPONSE_ROWS,
        openai.to_embedding_response,
        result.vectors,
        data.encoding_format,
        result.model,
        result.tokens,
    )
    return Response(body, media_type="application/json")


def _decode_all(token_lists: list[list[int]]) -> list[str]:
    """cl100k_base token ids -> texts. Raises InvalidRequest (param ``input``) on an unknown id."""
    try:
        return [decode_token_ids(ids) for ids in token_lists]
    except ValueError as exc:
        raise InvalidRequest(f"'input' holds an invalid token id: {exc}", param="input") from None


@get(["/v1/models", "/models"], tags=["OpenAI"], summary="List models")
async def list_models(state: State) -> ModelList:
    """Every served model name and alias the caller's API key may use, in the OpenAI list shape, with the
    modalities each embeds (an extension)."""
    registry: Registry = state.registry
    modalities = {name: multimodal.served_modalities(served) for served in registry.models
                  for name in served.config.served_names}
    return openai.to_model_list(request_context.visible_names(registry.names), state.started_at, modalities)


ROUTES = [create_embeddings, list_models]
