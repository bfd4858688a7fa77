"""``RequestObserver``: the outermost ASGI layer, around every HTTP request of the app.

It gives each request an id (``X-Request-ID`` when the client sends a sane one, else a new UUID),
opens its ``RequestInfo`` record, adds ``X-Request-ID`` and ``X-Process-Time`` (seconds from
arrival to the response head, e.g. ``0.012345``) to every response, ``X-Cache-Hits`` (inputs the
embedding cache served) to every embedding response, ``x-ratelimit-*`` to those of rate-limited
requests (``gateway.http.rate_limit``), and when the response is sent
writes the access log line and the request metrics.

It wraps Litestar's whole ASGI handler, as Litestar's OpenTelemetry plugin does, rather than sitting
in ``middleware=[...]``: Litestar runs that middleware per route, so 404s would pass unseen.
"""

from __future__ import annotations

import re
import time

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.metrics import Metrics
from gateway.http.request_log import log_request
from gateway.protocol.ids import uuid4_hex
from gateway.serving import request_context

UNMATCHED_ROUTE = "(unmatched)"  # metrics label of requests no route matched: never the raw path
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")  # anything else could forge log lines


def request_id_from(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is 1-128 safe characters, else a new random id."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid4_hex()


class RequestObserver:
    """ASGI wrapper: request id, ``X-Process-Time``, access log line and request metrics.

    Args:
        app: the ASGI app to observe (Litestar's ``asgi_handler``).
        metrics: where request counts and latencies go.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = request_context.start(request_id_from(scope), scope.get(request_context.BATCH_SCOPE_KEY))
        start = time.perf_counter()
        status = 500  # if the app fails before sending a response head

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = f"{time.perf_counter() - start:.6f}".encode()
                added = [(b"x-request-id", info.request_id.encode()), (b"x-process-time", elapsed)]
                if info.rate_limit is not None:  # the key's quotas, after this request's charges
                    added += info.rate_limit.headers()
                if info.cache_hits is not None:  # an embedding response: inputs the cache served
                    added.append((b"x-cache-hits", str(info.cache_hits).encode()))
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_context.finish(info)  # the models the request used may now idle (Registry.use)
            self.metrics.in_progress.dec()
            seconds = time.perf_counter() - start
            route = scope.get("path_template") or UNMATCHED_ROUTE
            self.metrics.observe_request(info, route, scope["method"], status, seconds)
            client = scope.get("client")
            log_request(info, method=scope["method"], route=route, path=scope["path"], status=status,
                        seconds=seconds, client=client[0] if client else None)


def observe_requests(app: Litestar, metrics: Metrics) -> None:
    """Wrap ``app``'s ASGI handler in a ``RequestObserver`` (call once, after building the app)."""
    app.asgi_handler = RequestObserver(app.asgi_handler, metrics)
