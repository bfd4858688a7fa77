"""API keys and trusted hosts, checked by app-level Litestar guards on every route.

Guards run after routing and before the handler reads the body, so an unauthenticated client never
makes the server buffer a large body, and their errors render in the called route's wire format
(``openai.AuthenticationError`` on OpenAI routes, ``{"message"}`` on Cohere routes, ...).

- With API keys configured, every route but ``/health``, the probes (``/ready``, ``/health/ready``,
  ``/health/live``) and static files holding no data (``PUBLIC_STATIC``: the console's page, swagger-ui's
  scripts) needs ``Authorization: Bearer <key>`` (the OpenAPI document included): missing or wrong -> 401.
  ``/metrics`` needs ``metrics_api_key`` instead when that is set.
- ``/health`` answers everyone, but discloses details only to a valid key: the guard records the key
  (if any) and never refuses, so a probe with a stale key still reads ``status``
  (``gateway.http.routes.system``).
- A key limited to some models gets 403 for the others: the guard stores the key's models in the
  request context and ``Registry.get`` checks them once the body names a model.
- Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every key, so neither the
  match position nor the key length shows in the timing; keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from gateway.config import ApiKey, ModelConfig, Settings
from gateway.errors import AuthenticationFailed, InvalidRequest
from gateway.http.rate_limit import RateLimitGuard
from gateway.serving import request_context
from gateway.serving.rate_limits import RateLimiter

log = logging.getLogger(__name__)

# probes: /ready and embed-rerank's /health/ready and /health/live disclose nothing but up or not
PUBLIC_PATHS = frozenset({"/health", "/ready", "/health/ready", "/health/live"})
HEALTH_PATH = "/health"  # public, but a valid key there unlocks the details of its models
# route ``opt`` flag of static files holding no data (the console's page and scripts, swagger-ui's files):
# the key guard lets them through; their data comes from keyed routes (gateway.http.routes.ui)
PUBLIC_STATIC = "public_static"
METRICS_PATH = "/metrics"
MISSING_KEY = ("You didn't provide an API key. Send it in the Authorization header using Bearer auth "
               "(Authorization: Bearer YOUR_KEY).")
WRONG_KEY = "Incorrect API key provided."


@dataclass(frozen=True, slots=True)
class _Key:
    digest: bytes
    label: str
    models: frozenset[str] | None  # every served name and alias the key may use; None: all


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _allowed_names(wanted: list[str] | None, models: list[ModelConfig]) -> frozenset[str] | None:
    """Expand a key's model list to every name and alias of those models.

    Raises:
        ValueError: a listed name is not served (a typo would otherwise lock the key out silently).
    """
    if wanted is None:
        return None
    allowed: set[str] = set()
    for name in wanted:
        model = next((m for m in models if name in m.served_names), None)
        if model is None:
            raise ValueError(f"an API key lists the model {name!r}, which is not served")
        allowed.update(model.served_names)
    return frozenset(allowed)


class KeyRing:
    """A set of API keys, matched in constant time."""

    def __init__(self, keys: list[ApiKey], models: list[ModelConfig]) -> None:
        self._keys = [
            _Key(_digest(k.key.get_secret_value()), k.label(i), _allowed_names(k.models, models))
            for i, k in enumerate(keys, start=1)
        ]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def by_label(self, label: str | None) -> _Key | None:
        """The key whose label is ``label`` (a batch's owner), if it is still configured."""
        return next((key for key in self._keys if key.label == label), None)

    def match(self, presented: str) -> _Key | None:
        """The key equal to ``presented``, comparing against every key whatever matches first."""
        digest, found = _digest(presented), None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key
        return found


def _path(connection: ASGIConnection) -> str:
    return connection.scope["path"].rstrip("/") or "/"


def bearer_token(header: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyGuard:
    """Litestar guard: 401 without a valid key; records the key's label and models for the request.

    Raises on construction:
        ValueError: a key lists a model that is not served.
    """

    def __init__(self, settings: Settings, models: list[ModelConfig]) -> None:
        self.keys = KeyRing(settings.api_keys, models)
        metrics_key = settings.metrics_api_key
        has_metrics_key = metrics_key is not None and bool(metrics_key.get_secret_value())
        metrics_keys = [ApiKey(key=metrics_key, name="metrics")] if has_metrics_key else []
        self.metrics_keys = KeyRing(metrics_keys, models)

    def __call__(self, connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        path = _path(connection)
        info = request_context.current()
        if info is not None and info.batch is not None:  # a batch line, in-process: its owner's key
            key = self.keys.by_label(info.batch.owner)
            if key is None and self.keys:  # its key was removed from the configuration since
                raise AuthenticationFailed("The API key that created this batch is no longer configured.")
            info.api_key, info.allowed_models = (key.label, key.models) if key else (None, None)
            return
        if path == HEALTH_PATH and self.keys:
            self._note_key(connection, required=False)
            return
        if connection.scope["method"] == "OPTIONS" or path in PUBLIC_PATHS or handler.opt.get(PUBLIC_STATIC):
            return
        ring = self.metrics_keys if path == METRICS_PATH and self.metrics_keys else self.keys
        if ring:
            self._note_key(connection, ring=ring)

    def _note_key(self, connection: ASGIConnection, ring: KeyRing | None = None,
                  required: bool = True) -> None:
        """Record the presented key's label and models in the request context.

        Raises:
            AuthenticationFailed: no valid key of ``ring`` (default: the API keys) and ``required``.
        """
        presented = bearer_token(connection.headers.get("authorization"))
        key = (ring or self.keys).match(presented) if presented else None
        if key is None:
            if required:
                raise AuthenticationFailed(MISSING_KEY if presented is None else WRONG_KEY)
            return
        info = request_context.current() or request_context.start("")
        info.api_key, info.allowed_models = key.label, key.models


class HostGuard:
    """Litestar guard: 400 (in the route's error shape) when the Host header is not trusted.

    ``/health`` and ``/ready`` answer any host: orchestrators probe them by IP address.

    Args:
        patterns: host names, ``*.example.com`` wildcards, or ``*``; ports are ignored.
    """

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [p.lower() for p in patterns]

    def __call__(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if _path(connection) in PUBLIC_PATHS or request_context.BATCH_SCOPE_KEY in connection.scope:
            return
        host = connection.headers.get("host", "")
        try:
            hostname = urlsplit(f"//{host}").hostname or ""  # drops the port and IPv6 brackets
        except ValueError:
            hostname = ""
        if not any(fnmatchcase(hostname, pattern) for pattern in self.patterns):
            raise InvalidRequest(f"Invalid host header {host[:100]!r}: this host is not allowed.",
                                 code="invalid_host")


def make_guards(settings: Settings, models: list[ModelConfig], limiter: RateLimiter | None = None) -> list:
    """The app-level guards for ``settings``, and a start-up line saying how the server is protected.

    Args:
        models: the served models (a key's ``models`` may name any of their names or aliases).
        limiter: the per-key quotas, if any (``build_rate_limiter``): its guard runs after the key's.

    Raises:
        ValueError: a key lists a model that is not served.
    """
    keys = ApiKeyGuard(settings, models)
    if not keys.keys:
        log.warning("No API keys configured (GATEWAY_API_KEYS or [[api_keys]]): every route is open to "
                    "anyone who can reach this server")
    else:
        log.info("API keys required on every route but /health and the probes (%d keys); /health shows only "
                 "its status without one", len(settings.api_keys))
    guards = [HostGuard(settings.allowed_hosts)] if settings.allowed_hosts else []
    if keys.keys or keys.metrics_keys:  # an open server needs no guard: each costs a copy per request
        guards.append(keys)
    if limiter is not None:
        guards.append(RateLimitGuard(limiter, keyed=bool(keys.keys)))
        log.info("Rate limits on POST routes: %s", ", ".join(
            f"{label} rpm={q.rpm or '-'} tpm={q.tpm or '-'}" for label, q in limiter.quotas.items()))
    return [_inline(guard) for guard in guards]


def _inline(guard: Callable[[ASGIConnection, BaseRouteHandler], None]) -> Callable:
    """Run a guard on the event loop: Litestar sends plain-function guards to a worker thread, a thread
    hop per request for a few dictionary lookups."""

    async def run_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        guard(connection, handler)

    return run_guard


def cors_config(settings: Settings) -> CORSConfig | None:
    """Browser access from ``allowed_origins`` (``*``: any); None keeps CORS off (same-origin only)."""
    if not settings.allowed_origins:
        return None
    return CORSConfig(
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "X-Process-Time"],
        max_age=600,
    )
