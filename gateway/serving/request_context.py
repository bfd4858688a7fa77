"""What the current request is doing, for its log line, its metrics and its API key's model limits.

``RequestObserver`` (``gateway.http.middleware``) opens one ``RequestInfo`` per HTTP request in a context
variable; the deeper layers fill it in without any handler passing it along: the API key guard stores
the key's name and allowed models, ``Registry.get`` the model, ``Runner.run`` the inputs and tokens.
Context variables follow the request's task into ``asyncio.wait_for`` and worker threads
(``asyncio.to_thread`` copies the context), and the object is shared, so what they add is seen here.
Outside a request (warm-up, tests without a server) every function is a no-op.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import PermissionDenied

if TYPE_CHECKING:
    from gateway.serving.rate_limits import KeyLimits


@dataclass(eq=False, slots=True)
class RequestInfo:
    """One request's facts (never its body or credentials).

    Attributes:
        request_id: from ``X-Request-ID`` or generated.
        model: canonical name of the model the request resolved to.
        inputs: sequences sent to the model (texts, or query-document pairs / chunks).
        tokens: model tokens those sequences held.
        api_key: the label of the key that authenticated the request (its ``name`` or ``key-<n>``).
        allowed_models: served names the key may use; None means every model.
        rate_limit: the key's quotas for this request (``gateway.serving.rate_limits``); None: unlimited.
        cache_hits: inputs served from the embedding cache (``x-cache-hits``); None: not an embedding.
        batch: set when a batch job's line is being answered (``gateway.serving.jobs``): whose it is, and
            what share of its tokens its key's quota is charged; its work runs after interactive requests.
    """

    request_id: str = ""
    model: str | None = None
    inputs: int | None = None
    tokens: int | None = None
    api_key: str | None = None
    allowed_models: frozenset[str] | None = None
    rate_limit: KeyLimits | None = None
    cache_hits: int | None = None
    batch: BatchCaller | None = None
    admin: bool = False  # the key may call the admin API
    held: dict[object, Callable[[], None]] | None = None  # what to release when the request ends


@dataclass(frozen=True, slots=True)
class BatchCaller:
    """The owner of a batch line answered in-process (``gateway.http.inprocess``).

    Attributes:
        owner: label of the API key that created the batch; None when the server has no keys.
        token_share: share (0..1) of the line's tokens charged to that key's tokens-per-minute quota.
    """

    owner: str | None
    token_share: float = 0.0


# ASGI scope key carrying a ``BatchCaller``: only the in-process dispatcher sets it, never a client
BATCH_SCOPE_KEY = "gateway.batch_caller"


_current: ContextVar[RequestInfo | None] = ContextVar("gateway_request", default=None)


def start(request_id: str, batch: BatchCaller | None = None) -> RequestInfo:
    """Open the record of a new request in the current context (called once per request); ``batch``: the
    request answers a batch job's line."""
    info = RequestInfo(request_id, batch=batch)
    _current.set(info)
    return info


def current() -> RequestInfo | None:
    """The record of the request being served, or None outside a request."""
    return _current.get()


def holds(key: object) -> bool:
    """Whether the current request already holds ``key`` (``hold``)."""
    info = _current.get()
    return info is not None and info.held is not None and key in info.held


def hold(key: object, release: Callable[[], None]) -> bool:
    """Call ``release()`` when the current request ends (``finish``), once per ``key`` (a model the request
    uses); False outside a request (nothing was registered: the caller releases at once)."""
    info = _current.get()
    if info is None:
        return False
    if info.held is None:
        info.held = {}
    info.held.setdefault(key, release)
    return True


def finish(info: RequestInfo) -> None:
    """The request ended (its response sent, or it failed): run what ``hold`` registered, once."""
    held, info.held = info.held, None
    for release in (held or {}).values():
        release()


def note_model(name: str) -> None:
    """Record the model the request resolved to (its canonical name: a bounded metrics label)."""
    if info := _current.get():
        info.model = name


def count_work(inputs: int, tokens: int) -> None:
    """Add sequences and tokens sent to a model (a request may run several batches of work)."""
    if info := _current.get():
        info.inputs = (info.inputs or 0) + inputs
        info.tokens = (info.tokens or 0) + tokens


def charge_tokens(tokens: int) -> None:
    """Spend a request's model tokens from its key's tokens-per-minute quota, before the model runs.

    Raises:
        RateLimited: the key has fewer tokens left in its window (429).
    """
    if (info := _current.get()) and info.rate_limit is not None:
        if info.batch is not None:  # batch tokens count at their configured share (default: not at all)
            tokens = math.ceil(tokens * info.batch.token_share)
            if not tokens:
                return
        info.rate_limit.charge_tokens(tokens)


def is_background() -> bool:
    """Whether the current request answers a batch line (its work yields to interactive requests)."""
    info = _current.get()
    return info is not None and info.batch is not None


def count_cache_hits(hits: int) -> None:
    """Add inputs served from the embedding cache (0 still marks the response as an embedding one)."""
    if info := _current.get():
        info.cache_hits = (info.cache_hits or 0) + hits


def visible_names(names: list[str]) -> list[str]:
    """The served names the current API key may use, in order (all of them when unrestricted)."""
    info = _current.get()
    if info is None or info.allowed_models is None:
        return names
    return [name for name in names if name in info.allowed_models]


def authorize_model(requested: str, served_names: list[str]) -> None:
    """Check the current API key may use a model, by any of its names or aliases.

    Raises:
        PermissionDenied: the key is limited to other models (403).
    """
    info = _current.get()
    if info is None or info.allowed_models is None or info.allowed_models.intersection(served_names):
        return
    raise PermissionDenied(f"This API key is not allowed to use the model '{requested}'.", param="model")
