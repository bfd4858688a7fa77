"""Per-key rate limits: requests and model tokens per minute, enforced and reported as OpenAI's API does.

- A quota is ``rpm`` (requests to POST routes) and/or ``tpm`` (model tokens: the count usage reports,
  after prompts and truncation, images counted as their tokens). An ``[[api_keys]]`` entry's own
  ``rpm``/``tpm`` win; else ``rate_limit_rpm``/``rate_limit_tpm``; with no API keys at all, those two
  make one quota that every client shares (``SHARED``): without keys the server cannot tell tenants
  apart, and a client address is not an identity behind a proxy. Keys sharing a ``name`` share a quota
  (rotate a secret without resetting its usage).
- A request is counted when it is routed (before its body is read), its tokens once they are known
  (``request_context.charge_tokens``, from ``service.check_token_total``), before the model runs: a
  request that would pass the tokens left is refused whole with 429 (``RateLimited``), as OpenAI does,
  and costs nothing. A refused request does not count either.
- The clock math is the ``limits`` package (MIT): a fixed window of ``WINDOW_S`` per key that starts at
  the key's first request, kept in its ``MemoryStorage``, so ``x-ratelimit-reset-*`` is exactly when the
  whole quota is back. Quotas are per process: each Ray ingress replica keeps its own.
- ``limits`` is imported only when some quota is configured (``build_rate_limiter``): an unlimited server
  loads nothing more.

Headers (https://platform.openai.com/docs/guides/rate-limits): ``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` and their ``-tokens`` twins, only for
the quotas configured, on every response of a limited request (429s too).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gateway.config import Settings
from gateway.errors import RateLimited

SHARED = "shared"  # the label (and metrics ``key``) of the one quota of a server without API keys
WINDOW_S = 60  # rpm and tpm: per minute


@dataclass(frozen=True, slots=True)
class Quota:
    """Requests and model tokens per window; None: that one is unlimited."""

    rpm: int | None = None
    tpm: int | None = None

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(slots=True)
class Usage:
    """What one key did since start-up (for metrics): admitted requests, charged tokens, refusals."""

    requests: int = 0
    tokens: int = 0
    rejected_requests: int = 0  # refused by rpm
    rejected_tokens: int = 0  # requests refused by tpm


def resolve_quotas(settings: Settings) -> dict[str, Quota]:
    """The quota of every limited key, by label (a key's ``name``, else ``key-<n>``, as the auth guard).

    Keys without a quota of their own take ``rate_limit_rpm`` / ``rate_limit_tpm`` field by field; with no
    keys configured, those make the ``SHARED`` quota. Unlimited keys are left out.

    Raises:
        ValueError: keys sharing a name ask for different quotas.
    """
    default = Quota(settings.rate_limit_rpm, settings.rate_limit_tpm)
    if not settings.api_keys:
        return {SHARED: default} if default else {}
    quotas: dict[str, Quota] = {}
    for position, key in enumerate(settings.api_keys, start=1):
        label = key.label(position)
        quota = Quota(default.rpm if key.rpm is None else key.rpm,
                      default.tpm if key.tpm is None else key.tpm)
        if quotas.setdefault(label, quota) != quota:
            raise ValueError(f"API keys named {label!r} share one quota but set different rpm / tpm")
    return {label: quota for label, quota in quotas.items() if quota}


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it (Go's format): ``20ms``, ``1s``,
    ``8.64s``, ``6m0s``, ``1h2m3s``; 0 is ``0s``."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class RateLimiter:
    """The quotas of every limited key, and their windows (``limits``' fixed window in memory).

    Args:
        quotas: label -> quota (``resolve_quotas``); must not be empty.
        window_s: the window of ``rpm`` / ``tpm`` in seconds (60; tests shorten it).
    """

    def __init__(self, quotas: dict[str, Quota], window_s: int = WINDOW_S) -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        def item(amount: int | None):
            return None if amount is None else RateLimitItemPerSecond(amount, window_s)

        self.quotas = dict(quotas)
        self.window_s = window_s
        self._items = {label: (item(q.rpm), item(q.tpm)) for label, q in quotas.items()}
        self._windows = FixedWindowRateLimiter(MemoryStorage())
        self._usage = {label: Usage() for label in quotas}
        self._lock = threading.Lock()  # usage counts; the windows lock themselves

    def for_key(self, label: str) -> KeyLimits | None:
        """The handle of one request of ``label`` (charge it, write its headers); None when unlimited."""
        items = self._items.get(label)
        return None if items is None else KeyLimits(self, label, *items)

    def usage(self) -> dict[str, Usage]:
        """A copy of every limited key's usage, by label."""
        with self._lock:
            return {label: Usage(u.requests, u.tokens, u.rejected_requests, u.rejected_tokens)
                    for label, u in self._usage.items()}

    def _take(self, item, label: str, cost: int) -> bool:
        """Consume ``cost`` of ``item`` unless that would pass its limit (then consume nothing)."""
        return self._windows.test(item, label, cost=cost) and self._windows.hit(item, label, cost=cost)

    def _stats(self, item, label: str) -> tuple[int, float]:
        """(remaining, seconds until the window resets) of ``item`` for ``label``."""
        reset_at, remaining = self._windows.get_window_stats(item, label)
        return remaining, max(0.0, reset_at - time.time())

    def _count(self, label: str, **added: int) -> None:
        with self._lock:
            usage = self._usage[label]
            for name, amount in added.items():
                setattr(usage, name, getattr(usage, name) + amount)


@dataclass(slots=True)
class KeyLimits:
    """One request's view of its key's quotas (stored in its ``RequestInfo.rate_limit``)."""

    limiter: RateLimiter
    label: str
    requests_item: object | None
    tokens_item: object | None

    def admit_request(self) -> None:
        """Count this request against the key's requests per minute.

        Raises:
            RateLimited: none are left in the window (type ``requests``); nothing is counted.
        """
        item = self.requests_item
        if item is not None and not self.limiter._take(item, self.label, 1):
            self.limiter._count(self.label, rejected_requests=1)
            raise self.refusal("requests", item, 1)
        self.limiter._count(self.label, requests=1)

    def charge_tokens(self, tokens: int) -> None:
        """Spend ``tokens`` model tokens of the key's tpm, before the model runs.

        Raises:
            RateLimited: fewer tokens are left in the window (type ``tokens``); nothing is spent.
        """
        item = self.tokens_item
        if item is not None and not self.limiter._take(item, self.label, tokens):
            self.limiter._count(self.label, rejected_tokens=1)
            raise self.refusal("tokens", item, tokens)
        self.limiter._count(self.label, tokens=tokens)

    def refusal(self, limit: str, item, requested: int) -> RateLimited:
        """The 429 for ``requested`` more of ``limit`` (``requests`` | ``tokens``), in OpenAI's words."""
        remaining, reset_s = self.limiter._stats(item, self.label)
        used = item.amount - remaining
        unit = "requests per min (RPM)" if limit == "requests" else "tokens per min (TPM)"
        who = "all clients (one quota: no API keys)" if self.label == SHARED else f"API key '{self.label}'"
        message = (f"Rate limit reached for {who} on {unit}: Limit {item.amount}, "
                   f"Used {used}, Requested {requested}.")
        if requested > item.amount:
            message += " The request is larger than the whole limit: send fewer or shorter inputs."
        else:
            message += f" Please try again in {openai_duration(reset_s)}."
        return RateLimited(message, limit=limit, retry_after_s=reset_s)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``x-ratelimit-*`` response headers of the configured quotas, as they stand now."""
        out: list[tuple[bytes, bytes]] = []
        for kind, item in (("requests", self.requests_item), ("tokens", self.tokens_item)):
            if item is None:
                continue
            remaining, reset_s = self.limiter._stats(item, self.label)
            out += [(f"x-ratelimit-limit-{kind}".encode(), str(item.amount).encode()),
                    (f"x-ratelimit-remaining-{kind}".encode(), str(remaining).encode()),
                    (f"x-ratelimit-reset-{kind}".encode(), openai_duration(reset_s).encode())]
        return out


def build_rate_limiter(settings: Settings) -> RateLimiter | None:
    """The server's limiter, or None (and no ``limits`` import) when no quota is configured.

    Raises:
        ValueError: keys sharing a name ask for different quotas.
    """
    quotas = resolve_quotas(settings)
    return RateLimiter(quotas) if quotas else None
