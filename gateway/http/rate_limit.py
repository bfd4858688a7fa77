"""``RateLimitGuard``: counts each POST request against its API key's quota (``gateway.serving.rate_limits``).

It runs after the API key guard (which names the key) and before the body is read, so a client over its
requests per minute never makes the server buffer a body; its 429 renders in the called route's wire
format like every guard error. Only POST routes are limited: they are the ones that do model work, while
model lists, docs, ``/health``, ``/ready`` and ``/metrics`` stay free. The request keeps its handle in
``RequestInfo.rate_limit``: tokens are charged on it once known, and ``RequestObserver`` writes its
``x-ratelimit-*`` headers on the response, the 429 included.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from gateway.serving import request_context
from gateway.serving.rate_limits import SHARED, RateLimiter


class RateLimitGuard:
    """Litestar guard: 429 when the request's key (or, with no keys, every client together) is over its rpm.

    Args:
        limiter: the server's quotas.
        keyed: whether API keys are configured (else every request shares the ``SHARED`` quota).
    """

    def __init__(self, limiter: RateLimiter, *, keyed: bool) -> None:
        self.limiter, self.keyed = limiter, keyed

    def __call__(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if connection.scope["method"] != "POST":
            return
        info = request_context.current() or request_context.start("")
        label = info.api_key if self.keyed else SHARED
        if info.batch is not None and not info.batch.token_share:
            return
        limits = self.limiter.for_key(label) if label is not None else None
        if limits is None:
            return
        info.rate_limit = limits  # set first: a refused request carries the headers too
        if info.batch is None:  # a batch line is not a request of the key's: only its tokens may count
            limits.admit_request()
