"""The load generator: ``concurrency`` asyncio workers, each with its own aiohttp connection, bounded in
time and count.

Request bodies are pre-encoded (``Load.bodies``) and responses are checked by status only, except the
first one of each run, which is parsed, so the client spends as little as possible of the machine's
CPU: on a small box it shares the cores with the server it measures. ``client_cpu_ms`` says how much
it still took.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
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
    client_cpu_s: float = 0.0  # CPU time of this (load generator) process during the run

    @property
    def client_cpu_ms(self) -> float:
        """Load-generator CPU per request, in ms: on a small machine it competes with the server."""
        return self.client_cpu_s * 1000 / max(1, self.requests + self.errors)

    @property
    def texts_per_s(self) -> float:
        return self.requests * self.load.texts / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, percent: float) -> float:
        """A latency percentile (e.g. 50, 99), or NaN without any successful request."""
        return float(np.percentile(self.latencies_ms, percent)) if self.latencies_ms else float("nan")


def make_client(url: str) -> aiohttp.ClientSession:
    """A one-connection HTTP/1.1 client session: one per worker.

    aiohttp rather than httpx: on the 2-core box the load generator shares the cores with the server it
    measures, and httpx (one client per worker) took 0.73 ms of client CPU per one-text request against
    aiohttp's 0.16 ms; at concurrency 32 that alone moved the server from 286 to 329 texts/s.
    """
    return aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1),
                                 timeout=aiohttp.ClientTimeout(total=600))


async def post_json(http: aiohttp.ClientSession, path: str, body: bytes) -> tuple[int, bytes]:
    """POST a JSON body; returns (status, response body)."""
    async with http.post(path, data=body, headers=JSON_HEADERS) as response:
        return response.status, await response.read()


async def run_load(url: str, load: Load, *, duration_s: float, max_requests: int,
                   check: Callable[[Load, bytes], None] | None = None) -> LoadResult:
    """Send ``load`` with its concurrency until ``duration_s`` passed or ``max_requests`` were sent.

    Each worker owns one connection, opened with a small warm-up request before the clock starts, and
    sends at least one request. ``check`` validates the first response body (raises on a wrong answer).
    Non-200 answers count as errors, not in throughput or latency.
    """
    result = LoadResult(load)
    clients = [make_client(url) for _ in range(load.concurrency)]
    try:
        await asyncio.gather(*(post_json(http, load.path, load.warmup) for http in clients))
        numbers = itertools.count()
        start, cpu_start = time.perf_counter(), time.process_time()
        deadline = start + duration_s

        def more(n: int) -> bool:
            return n < max_requests and (n < load.concurrency or time.perf_counter() < deadline)

        async def worker(http: aiohttp.ClientSession) -> None:
            while more(n := next(numbers)):
                sent = time.perf_counter()
                status, body = await post_json(http, load.path, load.bodies[n % len(load.bodies)])
                _record(result, status, body, (time.perf_counter() - sent) * 1000, check if n == 0 else None)

        await asyncio.gather(*(worker(http) for http in clients))
        result.elapsed_s = time.perf_counter() - start
        result.client_cpu_s = time.process_time() - cpu_start
    finally:
        await asyncio.gather(*(http.close() for http in clients))
    return result


def _record(result: LoadResult, status: int, body: bytes, latency_ms: float,
            check: Callable[[Load, bytes], None] | None) -> None:
    if status != 200:
        result.errors += 1
        result.first_error = result.first_error or f"{status}: {body[:200].decode(errors='replace')}"
        return
    if check is not None:
        check(result.load, body)
    result.requests += 1
    result.latencies_ms.append(latency_ms)
