"""The embedding cache in Redis (``cache_redis_url``), so replicas of the gateway share one cache.

Each entry is one float32 row at the model's native size, stored under ``gateway:emb:<key hex>`` (keys
from ``embedding_cache.input_key``, which already hold the model, its settings and the scope). Redis is
a help, never a dependency: every call has a short timeout (``cache_redis_timeout_s``) and no retries,
and after a failure the cache is skipped for ``cache_redis_retry_s`` seconds, so requests keep being
served by the model while Redis is away; ``/health`` reports the last error until a call succeeds again.
Bound its memory on the Redis side (``maxmemory`` with ``maxmemory-policy allkeys-lru``).

Client: redis-py's asyncio client (https://redis.readthedocs.io/en/stable/examples/asyncio_examples.html).
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.serving.embedding_cache import CacheStats

log = logging.getLogger(__name__)
KEY_PREFIX = b"gateway:emb:"


class RedisConnection:
    """One Redis client for every model of the process, and whether Redis is usable now.

    Args:
        url: ``redis://host:port/db`` (or ``rediss://``, ``unix://``).
        timeout_s: connect and per-call timeout.
        retry_s: after an error, how long to go without Redis before trying again.
    """

    def __init__(self, url: str, timeout_s: float, retry_s: float) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                              retry=Retry(NoBackoff(), 0))
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.error: str | None = None
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        if self.error is None:
            log.warning("embedding cache: Redis unavailable, serving without the cache: %s", exc)
        self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._down_until = time.monotonic() + self.retry_s

    def succeeded(self) -> None:
        if self.error is not None:
            log.info("embedding cache: Redis is back")
        self.error = None

    async def call(self, work):
        """Await ``work`` (a Redis coroutine) within the timeout; None if Redis is down or fails."""
        if not self.available:
            work.close()
            return None
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                result = await work
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            return None
        self.succeeded()
        return result

    def health(self) -> dict:
        return {"backend": "redis", "ok": self.error is None, "error": self.error}

    async def close(self) -> None:
        await self.client.aclose()


class RedisStore:
    """One model's view of the shared Redis cache (``embedding_cache.Store``)."""

    def __init__(self, connection: RedisConnection, stats: CacheStats) -> None:
        self.connection = connection
        self.stats = stats

    async def get_many(self, keys: list[bytes], dim: int) -> list[np.ndarray | None]:
        if not keys:
            return []
        values = await self.connection.call(self.connection.client.mget([KEY_PREFIX + k.hex().encode()
                                                                         for k in keys]))
        if values is None:
            return [None] * len(keys)
        # a row of another size (a corrupted or foreign entry) is a miss; dim 0: rows of any size (ragged
        # outputs, packed by embedding_cache.pack)
        return [np.frombuffer(v, dtype=np.float32) if v is not None and (len(v) == dim * 4 or not dim and
                                                                         len(v) % 4 == 0) else None
                for v in values]

    async def put_many(self, entries: list[tuple[bytes, np.ndarray]]) -> None:
        pipe = self.connection.client.pipeline(transaction=False)
        for key, row in entries:
            pipe.set(KEY_PREFIX + key.hex().encode(), np.ascontiguousarray(row, dtype=np.float32).tobytes())
        await self.connection.call(pipe.execute())
