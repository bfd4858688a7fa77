"""The load generator: ``concurrency`` asyncio workers on one httpx client, bounded in time and count.

Request bodies are pre-encoded (``Load.bodies``) and responses are checked by status only, except the
first one of each run, which is parsed, so the client spends as little as possible of the machine's
CPU: on a small box it shares the cores with the server it measures.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

from gateway.bench.loads import Load

JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class LoadResult:
    """What one load run measured (latencies in ms, successful requests only)."""

    load: Load
    requests: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def texts_per_s(self) -> float:
        return self.requests * self.load.texts / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, percent: float) -> float:
        """A latency percentile (e.g. 50, 99), or NaN without any successful request."""
        return float(np.percentile(self.latencies_ms, percent)) if self.latencies_ms else float("nan")


def make_client(url: str, concurrency: int) -> httpx.AsyncClient:
    """An HTTP/1.1 client keeping ``concurrency`` connections to ``url`` alive."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(600.0))


async def run_load(client: httpx.AsyncClient, load: Load, *, duration_s: float, max_requests: int,
                   check: Callable[[Load, bytes], None] | None = None) -> LoadResult:
    """Send ``load`` with its concurrency until ``duration_s`` passed or ``max_requests`` were sent.

    Each worker sends at least one request. ``check`` validates the first response body (raises on a
    wrong answer). Non-200 answers count as errors, not in throughput or latency.
    """
    result = LoadResult(load)
    numbers = itertools.count()
    start = time.perf_counter()
    deadline = start + duration_s

    def more(n: int) -> bool:
        return n < max_requests and (n < load.concurrency or time.perf_counter() < deadline)

    async def worker() -> None:
        while more(n := next(numbers)):
            body = load.bodies[n % len(load.bodies)]
            sent = time.perf_counter()
            response = await client.post(load.path, content=body, headers=JSON_HEADERS)
            latency_ms = (time.perf_counter() - sent) * 1000
            if response.status_code != 200:
                result.errors += 1
                result.first_error = result.first_error or f"{response.status_code}: {response.text[:200]}"
                continue
            if n == 0 and check is not None:
                check(load, response.content)
            result.requests += 1
            result.latencies_ms.append(latency_ms)

    await asyncio.gather(*(worker() for _ in range(load.concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result


async def warm_up(client: httpx.AsyncClient, load: Load) -> None:
    """Open ``concurrency`` connections with small requests to the same route (not measured)."""
    await asyncio.gather(*(client.post(load.path, content=load.warmup, headers=JSON_HEADERS)
                           for _ in range(load.concurrency)))
