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
from gateway.http.offload import big_body, big_response, offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.inputs import InputItem
from gateway.protocol import openai, openai_dialects, openai_sparse
from gateway.protocol.openai import EmbeddingRequest, ModelList
from gateway.protocol.openai_dialects import EmbeddingOptions
from gateway.protocol.token_ids import decode_token_ids
from gateway.serving import late_chunking, multimodal, outputs, request_context, service
from gateway.serving.registry import Registry

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
    # classifying a long input list, and decoding token ids, take time in proportion to the body's size
    inputs = await offload(big_body(await request.body()), _inputs, data.input)
    if data.max_active_dims is not None or _gives_sparse(registry, data.model):
        return await _embed_sparse(registry, data, inputs, options, request)
    result = await cancel_on_disconnect(request, _embed(registry, data.model, inputs, options))
    encode = partial(openai.to_embedding_response, as_base64=options.base64, param=options.dtype_param)
    body = await offload(big_response(result.vectors), encode, result.vectors, options.dtype, result.model,
                         result.tokens)
    return Response(body, media_type="application/json")


def _gives_sparse(registry: Registry, model: str) -> bool:
    """Whether ``model`` is a sparse-only model (answered with indices/values rows)."""
    engine = registry.get(model).engine
    outputs = engine.spec.outputs if engine is not None else ()
    return "sparse" in outputs and "dense" not in outputs


async def _embed_sparse(registry: Registry, data: EmbeddingRequest, inputs: list, options: EmbeddingOptions,
                        request: Request) -> Response[bytes]:
    """A sparse model's ``{"indices", "values"}`` rows (``gateway.protocol.openai_sparse``)."""
    openai_sparse.check_sparse_options({
        "encoding_format": data.encoding_format, "dimensions": data.dimensions,
        "output_dimension": data.output_dimension, "output_dtype": data.output_dtype,
        "embedding_type": data.embedding_type, "encoding_type": data.encoding_type,
        "normalized": data.normalized, "late_chunking": data.late_chunking,
    })
    if inputs and isinstance(inputs[0], InputItem):
        raise InvalidRequest("a sparse model embeds texts only, not image or part inputs", param="input")
    served = registry.get(data.model)
    prompt = next((p for name in options.prompt_names if (p := service.named_prompt(served, name))), None)
    task = next((name for name in options.prompt_names if name in ("query", "document")), None)
    result = await cancel_on_disconnect(request, outputs.ragged_texts(
        registry, data.model, inputs, "sparse", prompt=prompt, task=task, truncate=options.truncate,
        max_active_dims=service.check_positive(data.max_active_dims, "max_active_dims")))
    rows = [(row.indices, row.values) for row in result.rows]
    body = await offload(len(rows) > 64, openai_sparse.to_sparse_response, rows, result.model, result.tokens)
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


def _inputs(value: openai.EmbeddingInput) -> list[str] | list[InputItem]:
    """``input`` as texts (cl100k_base token ids decoded to text) or, with part objects, inputs of parts.

    Raises:
        InvalidRequest: see ``openai.split_input`` and ``openai.input_items``; an unknown token id
            (param ``input``).
    """
    items = openai.input_items(value)  # part objects: images
    if items is not None:
        return items
    texts, token_lists = openai.split_input(value)
    if not token_lists:
        return texts
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
    outputs = {name: (served.config.task, list(served.engine.spec.outputs)) for served in registry.models
               if served.engine is not None for name in served.config.served_names}
    return openai.to_model_list(request_context.visible_names(registry.names), state.started_at, modalities,
                                outputs)


ROUTES = [create_embeddings, list_models]
