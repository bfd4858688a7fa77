"""vLLM's ``POST /pooling``: per-token vectors of a multi-vector model (``task: "token_embed"``) or pooled
vectors of a dense embedder (``task: "embed"``); wire format in ``gateway.protocol.vllm_pooling``,
errors in OpenAI's shape (as vLLM's)."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.http.routes.tei_outputs import model_with
from gateway.protocol import openai, vllm_pooling
from gateway.serving import outputs, service
from gateway.serving.registry import Registry

register_error_format(["/pooling"], openai.error_body)
BIG_ROWS = 64  # responses of more inputs are encoded off the event loop


@post("/pooling", status_code=200, before_request=json_only, tags=["vLLM"], summary="Pooling (vLLM)",
      operation_class=documented(response=vllm_pooling.PoolingResponse))
async def pooling(data: vllm_pooling.PoolingRequest, state: State, request: Request) -> Response[bytes]:
    """Token vectors (``token_embed``) or pooled vectors (``embed``) of ``input``, in vLLM's shape."""
    registry: Registry = state.registry
    model = model_with(registry, "multi_vector", data.model) if data.task != "embed" else \
        (data.model or service.default_embed_model(registry))
    engine, _ = registry.get(model).ready()
    task = data.task or ("token_embed" if "multi_vector" in engine.spec.outputs else "embed")
    vllm_pooling.check_request(data, task)
    texts = vllm_pooling.texts_of(data)
    if task == "token_embed":
        ragged = await cancel_on_disconnect(request, outputs.ragged_texts(
            registry, model, texts, "multi_vector"))
        rows, tokens = ragged.rows, ragged.tokens
    else:
        dense = await cancel_on_disconnect(request, service.embed_texts(registry, model, texts))
        rows, tokens = list(dense.vectors), dense.tokens
    body = await offload(len(rows) > BIG_ROWS, vllm_pooling.to_response, rows, model, tokens)
    return Response(body, media_type="application/json")


ROUTES = [pooling]
