"""``POST /similarity``, shared by two wire formats, told apart by the body's keys:

- TEI's ``{"inputs": {"source_sentence", "sentences"}, "parameters"?}`` -> ``[cosine, ...]`` of each
  sentence's embedding with the source sentence's (``gateway.protocol.tei_similarity``), errors in TEI's
  ``{"error", "error_type"}``;
- tkr-embed's ``{"query_embeddings", "candidate_embeddings", "metric"?}`` -> the ``(q, c)`` similarity
  matrix of vectors the client already holds (``gateway.protocol.tkr_embed``), errors in FastAPI's
  ``{"detail"}``; no model runs.

The body is decoded once to a plain value, the shape is chosen by its keys, then it is converted to that
shape's Struct.
"""

from __future__ import annotations

import time

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.errors import GatewayError, InvalidRequest
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect
from gateway.http.routes.model_choice import first_model
from gateway.protocol import tei, tei_similarity, tkr_embed
from gateway.protocol.fastapi_errors import convert, decode_json, detail_body
from gateway.serving import service
from gateway.serving.registry import Registry

BIG_MATRIX_CELLS = 10_000  # compute and encode larger matrices off the event loop

register_error_format(["/similarity"], detail_body)


@post("/similarity", status_code=200, tags=["TEI", "tkr-embed"], summary="Similarity (TEI or tkr-embed)",
      operation_class=documented(
          tei_similarity.SimilarityRequest, tkr_embed.SimilarityRequest,
          description="TEI's when it has `inputs`, else tkr-embed's embedding matrices.",
          response=list[float] | tkr_embed.SimilarityResponse,
          response_description="TEI's cosine per sentence, or tkr-embed's similarity matrix"))
async def similarity(request: Request, state: State) -> Response[bytes]:
    """TEI's sentence similarity, or tkr-embed's similarity of two embedding matrices (see the module)."""
    body = decode_json(await request.body(), object)
    if tei_similarity.is_tei_body(body):
        return await cancel_on_disconnect(request, _tei(body, state.registry))
    if not isinstance(body, dict) or not {"query_embeddings", "candidate_embeddings"} & set(body):
        raise InvalidRequest("Send TEI's {'inputs': {'source_sentence', 'sentences'}} or tkr-embed's "
                             "{'query_embeddings', 'candidate_embeddings', 'metric'}.")
    data = convert(body, tkr_embed.SimilarityRequest)
    start = time.perf_counter()
    query, candidates = tkr_embed.similarity_matrices(data)
    content = await offload(len(query) * len(candidates) > BIG_MATRIX_CELLS, _matrix, query, candidates,
                            data.metric, start)
    return Response(content, media_type="application/json")


def _matrix(query, candidates, metric: str, start: float) -> bytes:
    matrix = tkr_embed.similarities(query, candidates, metric)
    return msgspec.json.encode(tkr_embed.similarity_response(matrix, metric, time.perf_counter() - start))


async def _tei(body: dict, registry: Registry) -> Response[bytes]:
    """TEI's ``/similarity``: embed the source sentence and the sentences, one request, cosines."""
    try:
        data = convert(body, tei_similarity.SimilarityRequest)
        params = data.parameters or tei_similarity.SimilarityParameters()
        model = data.model or first_model(registry, "text")
        prompt = service.named_prompt(registry.get(model), params.prompt_name) if params.prompt_name else None
        if params.prompt_name and prompt is None:
            raise InvalidRequest(f"'prompt_name' {params.prompt_name!r} is not a prompt of this model",
                                 param="prompt_name")
        if not data.inputs.sentences:
            raise tei.EmptyInput("'inputs.sentences' must not be empty", param="inputs")
        result = await service.embed_texts(
            registry, model, [data.inputs.source_sentence, *data.inputs.sentences], prompt=prompt,
            truncate=params.truncate, truncation_side=params.truncation_direction.lower(), param="inputs")
    except GatewayError as error:
        error.renderer = tei.error_body
        raise
    content = msgspec.json.encode(tei_similarity.cosines(result.vectors))
    return Response(content, media_type="application/json")


ROUTES = [similarity]
