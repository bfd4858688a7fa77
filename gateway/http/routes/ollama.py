"""Ollama embedding routes: ``POST /api/embed``, ``/api/embeddings`` (legacy) and ``/api/rerank``; errors
in Ollama's ``{"error"}`` shape on every Ollama path. Model routes: ``gateway.http.routes.ollama_models``.

Spec: ``gateway.protocol.ollama``. Like Ollama, these routes parse the body as JSON whatever its
Content-Type (``curl -d`` sends a form type), so they skip the JSON-only check of the other routes.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np
from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.config import parse_keep_alive
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import big_response, offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect
from gateway.protocol import ollama
from gateway.protocol.openai import float_rows
from gateway.serving import rerank as rerank_service
from gateway.serving import service
from gateway.serving.registry import Registry

PATHS = ["/api/embed", "/api/embeddings", "/api/rerank", "/api/tags", "/api/show", "/api/ps", "/api/version",
         # Ollama routes this server does not have: their 404 / 405 answer in Ollama's shape too
         "/api/generate", "/api/chat", "/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"]

register_error_format(PATHS, ollama.error_body)


def served_name(registry: Registry, name: str) -> str:
    """The served name (or alias) an Ollama model name means: itself, or without its ``:latest`` tag.

    Raises:
        ModelNotFound: Ollama's ``model 'x' not found`` (404).
        PermissionDenied: the caller's key may not use it (403).
    """
    names = set(registry.names)
    for candidate in (name, ollama.strip_latest(name)):
        if candidate and candidate in names:
            registry.get(candidate)  # authorizes the key and notes the model for the request log
            return candidate
    raise ModelNotFound(f"model '{name}' not found", param="model")


@post("/api/embed", status_code=200, tags=["Ollama"], summary="Embed (Ollama)",
      operation_class=documented(response=ollama.EmbedResponse))
async def embed(data: ollama.EmbedRequest, state: State, request: Request) -> Response[bytes]:
    """L2-normalized embeddings of ``input``, with Ollama's timings (nanoseconds) and token count."""
    start = time.perf_counter_ns()
    registry: Registry = state.registry
    model = served_name(registry, data.model)
    engine, _ = (await registry.use(model, keep_alive=keep_alive(data.keep_alive))).ready()
    loaded = time.perf_counter_ns()
    texts = ollama.inputs(data.input)
    dimensions = ollama.dimensions(data.dimensions, engine.spec.dim)
    if not texts:
        vectors, tokens = np.zeros((0, engine.spec.dim), np.float32), 0
    else:
        work = service.embed_texts(registry, model, texts, dimensions=dimensions, truncate=data.truncate,
                                   max_tokens=ollama.num_ctx(data.options), normalize=True)
        result = await cancel_on_disconnect(request, _ollama_too_long(work))
        vectors, tokens = result.vectors, result.tokens
    total = time.perf_counter_ns() - start
    body = await offload(big_response(vectors), ollama.to_embed_response, vectors, data.model,
                         tokens, total, loaded - start)
    return Response(body, media_type="application/json")


@post("/api/embeddings", status_code=200, tags=["Ollama"], summary="Embed one prompt (Ollama, legacy)",
      operation_class=documented(response=ollama.EmbeddingsResponse))
async def embeddings(data: ollama.EmbeddingsRequest, state: State, request: Request) -> Response[bytes]:
    """The embedding of ``prompt`` without the model's final normalization (Ollama's legacy route)."""
    if not data.model:
        raise InvalidRequest("model is required", param="model")
    registry: Registry = state.registry
    model = served_name(registry, data.model)
    await registry.use(model, keep_alive=keep_alive(data.keep_alive))  # an empty prompt only loads it
    row = msgspec.Raw(b"[]")
    if data.prompt:
        work = service.embed_texts(registry, model, [data.prompt], max_tokens=ollama.num_ctx(data.options),
                                   normalize=False, param="prompt")
        row = float_rows((await cancel_on_disconnect(request, work)).vectors)[0]
    return Response(msgspec.json.encode({"embedding": row}), media_type="application/json")


@post("/api/rerank", status_code=200, tags=["Ollama"], summary="Rerank documents (Ollama proposal)",
      operation_class=documented(response=ollama.RerankResponse))
async def rerank(data: ollama.RerankRequest, state: State, request: Request) -> Response[bytes]:
    """Documents best first, scored by the model (bi-encoder or cross-encoder; absent: the default)."""
    registry: Registry = state.registry
    model = served_name(registry, data.model) if data.model else None
    if model is not None:
        await registry.use(model, keep_alive=keep_alive(data.keep_alive))
    work = rerank_service.rerank(registry, model, data.query, data.documents, top_n=data.top_n)
    result = await cancel_on_disconnect(request, work)
    ranked = [(r.index, r.relevance_score) for r in result.results]
    body = ollama.to_rerank_response(ranked, data.documents, data.model or result.model,
                                     bool(data.return_documents))
    return Response(body, media_type="application/json")


def keep_alive(value: ollama.KeepAlive | None) -> ollama.KeepAlive | None:
    """The request's ``keep_alive`` checked (None: the model's own applies), as ``Registry.use`` takes it:
    Ollama's duration strings or seconds, ``0`` unloads once the request is done, negative keeps it.

    Raises:
        InvalidRequest: not a duration (400, Ollama's ``{"error"}``).
    """
    try:
        parse_keep_alive(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="keep_alive") from None
    return value


async def _ollama_too_long(work):
    """Await ``work``; a too-long input (``truncate: false``) gets Ollama's message."""
    try:
        return await work
    except InvalidRequest as exc:
        if exc.code != "context_length_exceeded":
            raise
        raise InvalidRequest(ollama.TOO_LONG, param=exc.param, code=exc.code) from None


ROUTES = [embed, embeddings, rerank]
