"""embed-rerank 1.5.1's own routes (``gateway.protocol.embed_rerank``): ``POST /api/v1/embed/``,
``GET /api/v1/embed/info``, ``POST /api/v1/rerank/``, ``POST /api/v1/rerank/batch``,
``GET /api/v1/rerank/info``, ``GET /health/ready``, ``GET /health/live``, ``POST /v1/openai/rerank`` and
``POST /v1/rerank_openai``. Its ``GET /health/`` is this server's ``/health`` (Litestar ignores a trailing
slash, so ``/api/v1/embed`` and ``/api/v1/embed/`` are one route), which carries its fields
(``gateway.http.routes.seed_health``).
"""

from __future__ import annotations

import time

from litestar import Request, Response, get, post
from litestar.datastructures import State

from gateway import __version__
from gateway.errors import GatewayError, NotReady
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect
from gateway.http.routes.model_choice import first_model
from gateway.protocol import embed_rerank as er
from gateway.protocol.fastapi_errors import ValidationFailed, decode_json
from gateway.serving import rerank as rerank_service
from gateway.serving import service
from gateway.serving.registry import Registry, ServedModel

BIG_RESPONSE_ROWS = 32  # encode larger responses off the event loop
EMBED, RERANK = "/api/v1/embed", "/api/v1/rerank"
OPENAI_RERANK = ["/v1/openai/rerank", "/v1/rerank_openai"]

register_error_format([EMBED, f"{EMBED}/info", RERANK, f"{RERANK}/batch", f"{RERANK}/info", "/health/ready",
                       "/health/live", *OPENAI_RERANK], er.error_body)


@post(f"{EMBED}/", status_code=200, tags=["embed-rerank"], summary="Embed texts (embed-rerank)",
      operation_class=documented(er.EmbedRequest, response=er.EMBED_RESPONSE_SCHEMA))
async def embed(request: Request, state: State) -> Response[bytes]:
    """Embed 1-100 ``texts``; embed-rerank's ``EmbedResponse``."""
    data = decode_json(await request.body(), er.EmbedRequest)
    er.check_embed(data)
    registry: Registry = state.registry
    model = data.model or first_model(registry, "text")
    served = await registry.use(model)
    start = time.perf_counter()
    result = await cancel_on_disconnect(request, service.embed_texts(
        registry, model, data.texts, truncate=er.truncates(data), max_tokens=data.max_tokens_override,
        normalize=data.normalize, param="texts"))
    body = await offload(len(data.texts) > BIG_RESPONSE_ROWS, _encode_embed, result, data, served,
                         time.perf_counter() - start)
    return Response(body, media_type="application/json")


def _encode_embed(result: service.Embeddings, data: er.EmbedRequest, served: ServedModel, seconds: float):
    spec = served.engine.spec
    return er.encode(er.embed_response(result.vectors.tolist(), data.texts, data, dim=result.vectors.shape[1],
                                       model=served.name, backend=spec.engine, device=spec.device,
                                       tokens=result.tokens, seconds=seconds))


@get(f"{EMBED}/info", tags=["embed-rerank"], summary="Embedding service info (embed-rerank)")
async def embed_info(state: State) -> dict:
    """The embedding model embed-rerank would describe (the first text model)."""
    served = state.registry.get(first_model(state.registry, "text"))
    return {"service": "EmbeddingService", "version": __version__, "backend": backend_info(served),
            "available": served.state == "ready", "supported_operations": ["embed_texts"],
            "max_batch_size": er.MAX_BATCH_SIZE, "max_text_length": er.MAX_TEXT_CHARS}


@post(f"{RERANK}/", status_code=200, tags=["embed-rerank"], summary="Rerank passages (embed-rerank)",
      operation_class=documented(er.RerankRequest, response=er.RERANK_RESPONSE_SCHEMA))
async def rerank(request: Request, state: State) -> Response[bytes]:
    """Rank ``passages`` (or ``documents``) by relevance to ``query``; the best ``top_k`` first."""
    data = decode_json(await request.body(), er.RerankRequest)
    answer = await cancel_on_disconnect(request, _rerank(state.registry, data, batch=False))
    return Response(er.encode(answer), media_type="application/json")


@post(f"{RERANK}/batch", status_code=200, tags=["embed-rerank"], summary="Rerank a batch (embed-rerank)",
      operation_class=documented(list[er.RerankRequest],
                                 response={"type": "array", "items": er.RERANK_RESPONSE_SCHEMA}))
async def rerank_batch(request: Request, state: State) -> Response[bytes]:
    """Up to 10 rerank requests, answered in order."""
    data = decode_json(await request.body(), list[er.RerankRequest])
    er.check_batch(data)
    answers = await cancel_on_disconnect(request, _rerank_all(state.registry, data))
    return Response(er.encode(answers), media_type="application/json")


async def _rerank_all(registry: Registry, requests: list[er.RerankRequest]) -> list[dict]:
    """Each request of a batch in turn; the first one refused fails the batch, naming its position (as
    embed-rerank's ``Error in batch item <i>``)."""
    answers = []
    for i, data in enumerate(requests):
        try:
            answers.append(await _rerank(registry, data, batch=True))
        except GatewayError as error:
            error.message = f"Error in batch item {i}: {error.message}"
            if isinstance(error, ValidationFailed):
                error.loc = [error.loc[0], i, *error.loc[1:]]
            raise
    return answers


async def _rerank(registry: Registry, data: er.RerankRequest, *, batch: bool) -> dict:
    passages, top_k = er.rerank_inputs(data)
    start = time.perf_counter()
    result = await rerank_service.rerank(registry, data.model, data.query.strip(), passages, top_n=top_k,
                                         param="passages")
    served = registry.get(result.model)
    spec = served.engine.spec
    ranked = [(r.index, r.relevance_score) for r in result.results]
    return er.rerank_response(ranked, passages, data.query, top_k=top_k,
                              return_documents=bool(data.return_documents), model=served.name,
                              backend=spec.engine, device=spec.device, method=_method(served),
                              seconds=time.perf_counter() - start, batch=batch)


@get(f"{RERANK}/info", tags=["embed-rerank"], summary="Reranking service info (embed-rerank)")
async def rerank_info(state: State) -> dict:
    """The model a rerank request without ``model`` uses."""
    served = state.registry.get(rerank_service.default_rerank_model(state.registry))
    return {"service": "RerankingService", "version": __version__,
            "backend": {**backend_info(served), "rerank_method": _method(served)},
            "available": served.state == "ready", "supported_operations": ["rerank_passages"],
            "max_passages": er.MAX_PASSAGES, "max_query_length": er.MAX_QUERY_CHARS,
            "max_passage_length": er.MAX_PASSAGE_CHARS}


@post(OPENAI_RERANK, status_code=200, tags=["embed-rerank"], summary="OpenAI-style rerank (embed-rerank)",
      operation_class=documented(er.OpenAIRerankRequest,
                                 response=er.OPENAI_RERANK_RESPONSE_SCHEMA))
async def openai_rerank(request: Request, state: State) -> Response[bytes]:
    """``{query, documents, top_n?, return_documents?}`` -> ``{object, data: [{index, score}], model,
    usage}``."""
    data = decode_json(await request.body(), er.OpenAIRerankRequest)
    passages = er.document_texts(data.documents)
    top_n = data.top_n if data.top_n is not None and data.top_n > 0 else None
    result = await cancel_on_disconnect(request, rerank_service.rerank(
        state.registry, data.model, data.query, passages, top_n=top_n, param="documents"))
    ranked = [(r.index, r.relevance_score) for r in result.results]
    answer = er.openai_rerank_response(ranked, passages, return_documents=bool(data.return_documents),
                                       model=result.model, tokens=result.tokens)
    return Response(er.encode(answer), media_type="application/json")


@get("/health/ready", tags=["embed-rerank"], summary="Readiness (embed-rerank)")
async def health_ready(state: State) -> dict:
    """``{"status": "ready"}`` once every model is ready, else 503 (embed-rerank's readiness probe)."""
    if not state.registry.all_ready:
        raise NotReady("Service not ready")
    return {"status": "ready"}


@get("/health/live", tags=["embed-rerank"], summary="Liveness (embed-rerank)")
async def health_live() -> dict:
    """``{"status": "alive"}`` while the process serves."""
    return {"status": "alive"}


def backend_info(served: ServedModel) -> dict:
    """embed-rerank's ``backend`` description of a model: name, engine, device, size, load time (s)."""
    spec = served.engine.spec if served.engine else None
    return {"name": served.engine_name, "model_name": served.name, "status": served.state,
            "device": spec.device if spec else None, "embedding_dim": spec.dim if spec else None,
            "max_tokens": spec.max_tokens if spec else None,
            "load_time": served.load_ms / 1000 if served.load_ms is not None else None}


def _method(served: ServedModel) -> str:
    return "cross-encoder" if served.config.task == "rerank" else "embedding_similarity"


ROUTES = [embed, embed_info, rerank, rerank_batch, rerank_info, openai_rerank, health_ready, health_live]
