"""Helpers shared by route modules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from litestar import Request
from litestar.types import Receive

from gateway.errors import ClientDisconnected, UnsupportedMediaType
from gateway.http.json_depth import check_json_depth
from gateway.http.offload import big_body, offload

T = TypeVar("T")


async def check_body(request: Request) -> None:
    """``before_request`` hook of every route (the app's): a POST body nested deeper than ``max_json_depth``
    is a 400, and one over ``max_body_bytes`` a 413, both in the route's error format, before any decoder
    runs. Whatever the Content-Type: routes that take any type decode the body as JSON all the same.

    The body is read here once; Litestar caches it, so the route's own decoding does not read it again. A
    big body is scanned in a worker thread (``gateway.http.offload``).
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()  # over max_body_bytes: Litestar's 413, rendered in the route's shape
    await offload(big_body(body), check_json_depth, body, request.app.state.settings.max_json_depth)


async def json_only(request: Request) -> None:
    """``before_request`` hook: POST bodies must be JSON (415 otherwise, in the route's error format), then
    ``check_body``'s checks (a route's own hook replaces the app's, so it runs them itself)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media_type or '(none)'!r}: send a JSON body with "
            "'Content-Type: application/json'."
        )
    await check_body(request)


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` while watching the connection; if the client leaves first, cancel ``work``.

    Cancelling the work cancels its ``Runner.run`` wait, so inputs that have not reached the engine yet
    are dropped instead of computed for nobody. Call it only after the body has been read (the watcher
    consumes ASGI ``receive`` messages until ``http.disconnect``).

    Raises:
        ClientDisconnected: the client closed the connection first (499, logged, never read).
        Whatever ``work`` raises.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this handler itself is cancelled (server shutdown)
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise ClientDisconnected("the client closed the connection before the response was ready")


async def _disconnect(receive: Receive) -> None:
    """Return once the ASGI server reports ``http.disconnect`` (later body messages are ignored)."""
    while (await receive())["type"] != "http.disconnect":
        pass
