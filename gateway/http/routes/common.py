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

    ``work`` runs in the calling task, not a task of its own: a watcher that sees the disconnect cancels
    the caller. A second task and ``asyncio.wait`` cost a lone one-text request two extra turns of the
    event loop, about 0.03 ms (``benchmarks/lone_request_timeline.py``).

    Raises:
        ClientDisconnected: the client closed the connection first (499, logged, never read).
        Whatever ``work`` raises; CancelledError when the caller itself is cancelled (server shutdown).
    """
    caller = asyncio.current_task()
    gone = False

    def on_disconnect(watcher: asyncio.Future) -> None:
        nonlocal gone
        if watcher.cancelled() or caller is None:
            return
        watcher.exception()  # retrieved: a failed ``receive`` means the connection is gone all the same
        gone = True
        caller.cancel()

    watcher = asyncio.ensure_future(_disconnect(request.receive))
    watcher.add_done_callback(on_disconnect)
    try:
        result = await work
    except asyncio.CancelledError:
        if not gone:
            raise
        caller.uncancel()  # the cancel was ours: the caller goes on, to answer 499
        raise ClientDisconnected("the client closed the connection before the response was ready") from None
    finally:
        watcher.remove_done_callback(on_disconnect)
        watcher.cancel()
    if gone:  # the work finished all the same (it did not let the cancel through): answer it
        caller.uncancel()
    return result


async def _disconnect(receive: Receive) -> None:
    """Return once the ASGI server reports ``http.disconnect`` (later body messages are ignored)."""
    while (await receive())["type"] != "http.disconnect":
        pass
