"""``create_app(settings)``: the Litestar application, its routes, lifespan and error handlers."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from gateway import __version__
from gateway.config import Settings
from gateway.http_errors import EXCEPTION_HANDLERS
from gateway.registry import Registry
from gateway.routes import openai as openai_routes
from gateway.routes import system as system_routes
from gateway.token_ids import seed_tiktoken_cache


def create_app(settings: Settings, registry: Registry | None = None) -> Litestar:
    """Build the app. Models load in the lifespan, off the event loop; ``/health`` answers meanwhile.

    Args:
        registry: a prepared registry (tests inject fake engines); default: one built from ``settings``.
    """
    registry = registry or Registry(settings)
    seed_tiktoken_cache()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        import asyncio

        loading = asyncio.create_task(registry.load_all())
        try:
            yield
        finally:
            loading.cancel()
            await registry.close()

    return Litestar(
        route_handlers=[*openai_routes.ROUTES, *system_routes.ROUTES],
        state=State({"registry": registry, "settings": settings, "started_at": int(time.time()),
                     "started_monotonic": time.monotonic()}),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="gateway", version=__version__, path="/schema"),
    )
