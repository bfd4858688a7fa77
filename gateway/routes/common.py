"""Helpers shared by route modules."""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

from litestar import Request

from gateway.errors import UnsupportedMediaType

T = TypeVar("T")


async def json_only(request: Request) -> None:
    """``before_request`` hook: POST bodies must be JSON (415 otherwise, in the route's error format)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media_type or '(none)'!r}: send a JSON body with "
            "'Content-Type: application/json'."
        )


async def offload(condition: bool, func: Callable[..., T], *args) -> T:
    """Run ``func(*args)`` in a worker thread when ``condition`` (big inputs), else inline."""
    if condition:
        return await asyncio.to_thread(func, *args)
    return func(*args)
