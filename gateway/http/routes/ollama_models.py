"""Ollama's discovery routes, which Ollama-only apps probe first: ``GET /`` ("Ollama is running"; ``POST /``
stays TEI's embed route), ``GET /api/version``, ``GET /api/tags``, ``POST /api/show`` and ``GET /api/ps``.

Spec: ``gateway.protocol.ollama_models``; errors in Ollama's shape (``gateway.http.routes.ollama``).
"""

from __future__ import annotations

from litestar import Response, get, head, post
from litestar.datastructures import State

from gateway.errors import InvalidRequest
from gateway.http.routes.ollama import served_name
from gateway.protocol import ollama_models
from gateway.protocol.ollama_models import ShowRequest, ShowResponse
from gateway.serving import request_context
from gateway.serving.registry import Registry, ServedModel

RUNNING = "Ollama is running"


@get("/", media_type="text/plain", tags=["Ollama"], summary="Ollama heartbeat")
async def heartbeat() -> str:
    """``Ollama is running``, the text Ollama's clients check for."""
    return RUNNING


@head(["/", "/api/version", "/api/tags"], tags=["Ollama"], summary="Ollama heartbeat (HEAD)")
async def heartbeat_head() -> None:
    """200 with no body, as Ollama answers ``HEAD`` on these paths (its CLI's heartbeat)."""


@get("/api/version", tags=["Ollama"], summary="Ollama version")
async def version() -> dict[str, str]:
    """The Ollama API version these routes follow."""
    return {"version": ollama_models.VERSION}


@get("/api/tags", tags=["Ollama"], summary="List models (Ollama)")
async def tags(state: State) -> Response[dict]:
    """Every served name and alias the caller's key may use, in Ollama's model list shape."""
    models = [ollama_models.listed(name, served.config, _spec(served), state.started_at)
              for name, served in _visible(state.registry)]
    return Response({"models": models})


@post("/api/show", status_code=200, tags=["Ollama"], summary="Show a model (Ollama)")
async def show(data: ShowRequest, state: State) -> ShowResponse:
    """A model's details, capabilities and ``model_info`` (context and embedding length)."""
    name = data.model or data.name
    if not name:
        raise InvalidRequest("model is required", param="model")
    registry: Registry = state.registry
    resolved = served_name(registry, name)
    served = next(m for m in registry.models if resolved in m.config.served_names)
    return ollama_models.show(name, served.config, _spec(served), state.started_at)


@get("/api/ps", tags=["Ollama"], summary="Running models (Ollama)")
async def ps(state: State) -> Response[dict]:
    """Every loaded model the caller's key may use, with when it unloads if still idle then (its
    ``keep_alive`` after its last request; far in the future when it never does)."""
    models = [ollama_models.running(name, served.config, served.engine.spec, served.expires_at)
              for name, served in _visible(state.registry) if served.state == "ready" and served.engine]
    return Response({"models": models})


def _visible(registry: Registry) -> list[tuple[str, ServedModel]]:
    """``(name, model)`` for every served name and alias the caller's key may use, in config order."""
    visible = set(request_context.visible_names(registry.names))
    return [(name, served) for served in registry.models for name in served.config.served_names
            if name in visible]


def _spec(served: ServedModel):
    return served.engine.spec if served.engine is not None else None


ROUTES = [heartbeat, heartbeat_head, version, tags, show, ps]
