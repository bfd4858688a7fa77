"""OpenAI routes: ``POST /v1/embeddings`` (also ``/embeddings``) and ``GET /v1/models``.

Spec: https://platform.openai.com/docs/api-reference/embeddings/create. The embeddings route also speaks
Voyage's, Jina's and Mistral's embeddings APIs (``gateway.protocol.openai_dialects``); its errors carry
``detail`` besides OpenAI's ``error`` for their clients.
"""

from __future__ import annotations

from functools import partial

from litestar import Request, Response, get, post
from litestar.datastructures import State

from gateway.errors import InvalidRequest
from gateway.http.error_handlers import register_error_format
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only, offload
from gateway.inputs import InputItem
from gateway.protocol import openai, openai_dialects
from gateway.protocol.openai import EmbeddingRequest, ModelList
from gateway.protocol.openai_dialects import EmbeddingOptions
from gateway.protocol.token_ids import decode_token_ids
from gateway.serving import late_chunking, multimodal, request_context, service
from gateway.serving.registry import Registry

BIG_RESPONSE_ROWS = 64  # encode larger responses off the event loop
EMBEDDINGS_PATHS = ["/v1/embeddings", "/embeddings"]

register_error_format(EMBEDDINGS_PATHS, openai_dialects.error_body)


# status_code=200: Litestar answers POST with 201 unless told; OpenAI answers 200
@post(EMBEDDINGS_PATHS, status_code=200, before_request=json_only, tags=["OpenAI"],
      summary="Create embeddings", operation_class=documented(response=openai.EmbeddingResponse))
async def create_embeddings(data: EmbeddingRequest, state: State, request: Request) -> Response[bytes]:
    """Embed ``input`` with ``model`` (OpenAI wire format; float, base64 or, as an extension, int8 / uint8 /
    binary / ubinary rows; Matryoshka ``dimensions``; Voyage's, Jina's and Mistral's fields; as an extension,
    image and text part objects)."""
    registry: Registry = state.registry
    options = openai_dialects.resolve(data)
    inputs: list[str] | list[InputItem] | None = openai.input_items(data.input)  # part objects: images
    if inputs is None:
        inputs, token_lists = openai.split_input(data.input)
        if token_lists:
            inputs = await offload(len(token_lists) > 16, _decode_all, token_lists)
    result = await cancel_on_disconnect(request, _embed(registry, data.model, inputs, options))
    encode = partial(openai.to_embedding_response, as_base64=options.base64, param=options.dtype_param)
    body = await offload(len(inputs) > BIG_RESPONSE_ROWS, encode, result.vectors, options.dtype, result.model,
                         result.tokens)
    return Response(body, media_type="application/json")


async def _embed(registry: Registry, model: str, inputs: list[str] | list[InputItem],
                 options: EmbeddingOptions) -> service.Embeddings:
    """Embed texts (or inputs of text and image parts) with the prompt, truncation, normalization and late
    chunking that ``options`` ask for."""
    served = registry.get(model)
    engine, _ = served.ready()
    service.check_dimensions(options.dimensions, engine.spec.dim, param=options.dimensions_param)
    prompt = next((p for name in options.prompt_names if (p := service.named_prompt(served, name))), None)
    if inputs and isinstance(inputs[0], InputItem):
        if options.late_chunking:
            raise InvalidRequest("'late_chunking' applies to texts only, not to image or part inputs",
                                 param="late_chunking")
        return await multimodal.embed_items(registry, model, inputs, dimensions=options.dimensions,
                                            prompt=prompt, truncate=options.truncate,
                                            normalize=options.normalize)
    texts = inputs
    if options.late_chunking:
        return await late_chunking.embed_late_chunked(registry, model, texts, prompt=prompt,
                                                      dimensions=options.dimensions,
                                                      normalize=options.normalize)
    return await service.embed_texts(registry, model, texts, dimensions=options.dimensions, prompt=prompt,
                                     truncate=options.truncate, normalize=options.normalize)


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
