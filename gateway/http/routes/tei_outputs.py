"""TEI routes for the ragged outputs: ``POST /embed_sparse`` (sparse models: SPLADE, inference-free SPLADE)
and ``POST /embed_all`` (multi-vector models: one vector per token); errors in TEI's shape.

Wire shapes: ``gateway.protocol.tei_sparse``. ``prompt_name`` ``query`` / ``document`` also picks the side
of a model whose query and document encoders differ (an inference-free SPLADE ``Router``), even when the
model defines no prompt text of that name; other names must be the model's prompts.
"""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.errors import InvalidRequest
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.protocol import tei, tei_sparse
from gateway.serving import outputs, service
from gateway.serving.registry import Registry, ServedModel

register_error_format(["/embed_sparse", "/embed_all"], tei.error_body)
BIG_ROWS = 64  # responses of more inputs are encoded off the event loop


def model_with(registry: Registry, output: str, model: str | None) -> str:
    """``model``, else the first model whose engine gives ``output``, else the default embedder (whose
    request then fails with a 400 that names the outputs it gives)."""
    if model:
        return model
    for served in registry.models:
        if served.engine is not None and output in served.engine.spec.outputs:
            return served.name
    return service.default_embed_model(registry)


def side_and_prompt(served: ServedModel, name: str | None) -> tuple[str | None, str | None]:
    """TEI's ``prompt_name`` -> (the model side, ``query`` / ``document`` or None; the prompt text).

    Raises:
        InvalidRequest: a name other than query / document that is not one of the model's prompts.
    """
    if name is None:
        return None, None
    prompt = service.named_prompt(served, name)
    side = name if name in ("query", "document") else None
    if prompt is None and side is None:
        known = ["query", "document", *served.engine.spec.prompts]
        raise InvalidRequest(f"'prompt_name' {name!r} is not a prompt of this model; its prompts: "
                             f"{', '.join(dict.fromkeys(known))}", param="prompt_name")
    return side, prompt


async def _ragged(data, output: str, state: State, request: Request) -> outputs.RaggedEmbeddings:
    registry: Registry = state.registry
    model = model_with(registry, output, data.model)
    served = registry.get(model)
    served.ready()
    texts = tei.embed_inputs(data.inputs)
    if output == "multi_vector":
        tei_sparse.require_texts(texts)
    if data.prompt_name is not None and not all(isinstance(text, str) for text in texts):
        raise InvalidRequest("'prompt_name' applies to texts; token-id inputs already hold their final "
                             "tokens", param="prompt_name")
    side, prompt = side_and_prompt(served, data.prompt_name)
    top = service.check_positive(getattr(data, "max_active_dims", None), "max_active_dims")
    return await cancel_on_disconnect(request, outputs.ragged_texts(
        registry, model, texts, output, prompt=prompt, task=side, truncate=data.truncate,
        truncation_side=(data.truncation_direction or "right").lower(), max_active_dims=top, param="inputs"))


@post("/embed_sparse", status_code=200, before_request=json_only, tags=["TEI"], summary="Sparse embed (TEI)",
      operation_class=documented(response=list[list[tei_sparse.SparseValue]],
                                 response_description="each input's non-zero terms, indices ascending"))
async def embed_sparse(data: tei_sparse.EmbedSparseRequest, state: State,
                       request: Request) -> Response[bytes]:
    """A sparse model's ``[{"index", "value"}, ...]`` per input (SPLADE term weights)."""
    result = await _ragged(data, "sparse", state, request)
    rows = [(row.indices, row.values) for row in result.rows]
    body = await offload(len(rows) > BIG_ROWS, tei_sparse.encode_sparse, rows)
    return Response(body, media_type="application/json")


@post("/embed_all", status_code=200, before_request=json_only, tags=["TEI"], summary="Token vectors (TEI)",
      operation_class=documented(response=list[list[list[float]]],
                                 response_description="each input's vectors, one per token the model keeps"))
async def embed_all(data: tei_sparse.EmbedAllRequest, state: State, request: Request) -> Response[bytes]:
    """A multi-vector (ColBERT) model's token vectors per input; ``prompt_name`` ``query`` encodes the
    inputs as queries (query prefix and expansion), otherwise as documents."""
    result = await _ragged(data, "multi_vector", state, request)
    body = await offload(len(result.rows) > BIG_ROWS, tei_sparse.encode_token_vectors, result.rows)
    return Response(body, media_type="application/json")


ROUTES = [embed_sparse, embed_all]
