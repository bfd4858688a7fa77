"""The admin API: the models' life cycle at run time (``gateway.serving.lifecycle``).

- ``GET /admin/models``: every configured model with its state, weight bytes, last use, expiry, load
  time, requests in flight and download progress.
- ``POST /admin/models/{name}/load``: load it now (waits for the load; 503 with Retry-After when
  ``model_memory_budget`` has no room).
- ``POST /admin/models/{name}/unload``: let its in-flight requests finish, then unload it.
- ``POST /admin/reload`` (and SIGHUP): re-read the config file and apply its model list
  (``gateway.serving.reload``); other settings need a restart.

With API keys configured only keys with ``admin = true`` may call these (others: 403); with none the
admin API is open, like every route. Errors in the OpenAI shape.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from litestar import get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler

from gateway.config import ConfigError, Settings, load_settings
from gateway.errors import InvalidRequest, ModelNotFound, NotReady, PermissionDenied
from gateway.serving import request_context
from gateway.serving.registry import Registry, ServedModel
from gateway.serving.reload import ReloadResult, apply_models


class AdminModel(msgspec.Struct):
    """One model as the admin API shows it; times are RFC 3339 UTC, None when not applicable."""

    name: str
    aliases: list[str]
    state: str  # unloaded | loading | ready | unloading | failed
    load: str  # startup | on_demand
    pinned: bool
    keep_alive_s: float | None  # after the last request; None: forever
    bytes: int | None  # weight bytes from the safetensors headers (None: not known yet)
    last_used: str | None
    expires_at: str | None  # when the idle model unloads; None: never (or in use now)
    loaded_at: str | None
    load_ms: float | None
    in_flight: int  # requests holding the model now
    error: str | None
    download: dict | None  # {"done", "total"} bytes of its hub download


def admin_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Route guard: with API keys configured, the request's key must have ``admin = true``.

    Raises:
        PermissionDenied: a key without ``admin`` (403).
    """
    settings: Settings = connection.app.state.settings
    info = request_context.current()
    if settings.api_keys and not (info is not None and info.admin):
        raise PermissionDenied("This API key may not use the admin API (set admin = true on the key).")


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def admin_model(served: ServedModel) -> AdminModel:
    """The admin view of one model."""
    return AdminModel(
        name=served.name, aliases=served.config.aliases, state=served.state, load=served.config.load,
        pinned=served.config.pinned, keep_alive_s=served.default_keep_alive_s(), bytes=served.weights_bytes,
        last_used=_time(served.last_used), expires_at=_time(served.expires_at),
        loaded_at=_time(served.loaded_at), load_ms=served.load_ms, in_flight=served.in_flight,
        error=served.error, download=served.download)


def _model(registry: Registry, name: str) -> ServedModel:
    served = next((m for m in registry.models if name in m.config.served_names), None)
    if served is None:
        raise ModelNotFound(f"The model '{name}' does not exist.", param="name")
    return served


@get("/admin/models", guards=[admin_only], tags=["Admin"], summary="Models and their life cycle")
async def list_models(state: State) -> dict[str, list[AdminModel]]:
    """Every configured model: state, bytes, last use, expiry, load time, requests in flight."""
    return {"models": [admin_model(m) for m in state.registry.models]}


@post("/admin/models/{name:str}/load", status_code=200, guards=[admin_only], tags=["Admin"],
      summary="Load a model now")
async def load_model(name: str, state: State) -> AdminModel:
    """Load the model (no-op when loaded) and answer once it is ready.

    Raises:
        ModelNotFound (404); ModelUnavailable (503, Retry-After): no room under the memory budget;
        NotReady (503): it failed to load (the reason in the message).
    """
    registry: Registry = state.registry
    served = _model(registry, name)
    await registry.load(served)
    if served.state != "ready":
        raise NotReady(f"model {served.name!r} failed to load: {served.error}")
    return admin_model(served)


@post("/admin/models/{name:str}/unload", status_code=200, guards=[admin_only], tags=["Admin"],
      summary="Unload a model (drains first)")
async def unload_model(name: str, state: State) -> AdminModel:
    """Wait for the model's in-flight requests, then unload it (its next request loads it again)."""
    registry: Registry = state.registry
    served = _model(registry, name)
    await registry.unload(served, reason="admin")
    return admin_model(served)


@post("/admin/reload", status_code=200, guards=[admin_only], tags=["Admin"], summary="Re-read the config")
async def reload_config(state: State) -> ReloadResult:
    """Re-read the config file and apply its models (added, removed, changed) without dropping requests.

    Raises:
        InvalidRequest (400): the edited config is invalid (nothing was changed).
    """
    return await reload_from_file(state.registry, state.settings)


async def reload_from_file(registry: Registry, settings: Settings) -> ReloadResult:
    """Read ``settings.config`` (or the default file) again and apply its models (also SIGHUP's)."""
    try:
        fresh = load_settings(config=settings.config)
        return await apply_models(registry, fresh)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise InvalidRequest(f"the config was not reloaded: {exc}") from None


ROUTES = [list_models, load_model, unload_model, reload_config]
