"""Overload holds: offered ~10x what the machine serves, the server answers only 200 or 429, every 200
holds its own request's rows, its memory stays bounded, and it serves normally once the load stops.

One server with a small queue (``GATEWAY_MAX_QUEUE_TOKENS``, ``GATEWAY_MAX_QUEUE_WAIT_S``), so it sheds
load with 429 beyond a few seconds of queueing. A short closed-loop calibration measures the requests
per second it serves; then requests are offered open-loop at ten times that rate. Each request holds 8
distinct texts of about 100 tokens (so the client, on the same machine, can offer 10x while the server
does the expensive part); each answered vector is checked against the server's embedding of its text
sent again once the load is over (64 texts to a request: any row landing in the wrong response or place
would differ).
The figures (rates, statuses, peak RSS from ``VmHWM``) are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from compat_tests.conftest import DEFAULT_ALIAS
from compat_tests.server import RunningServer, run_server

INPUTS_PER_REQUEST = 8
QUEUE_TOKENS = 20_000  # about 24 requests of 8 x ~105 tokens; on a slow machine the wait bound sheds first
QUEUE_WAIT_S = 2
CALIBRATION_S = 4
LOAD_S = 8
OVERLOAD = 10
FILLER = ("the committee reviewed the quarterly figures and agreed that the new warehouse should open in "
          "spring while the old one is sold to a local cooperative of farmers and bakers ") * 2


def text(request: int, row: int) -> str:
    """A distinct text of about 100 tokens for row ``row`` of request ``request``."""
    return f"request {request} row {row}: {FILLER}"


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid`` in KiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.fixture(scope="module")
def shedding_server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    env = {"GATEWAY_MAX_QUEUE_TOKENS": str(QUEUE_TOKENS), "GATEWAY_MAX_QUEUE_WAIT_S": str(QUEUE_WAIT_S)}
    with run_server(tmp_path_factory.mktemp("overload"), env=env) as running:
        yield running


async def embed(client: httpx.AsyncClient, url: str, request: int) -> tuple[int, int, list | None]:
    """(request number, status or 0 for no answer, the vectors of a 200)."""
    body = {"model": DEFAULT_ALIAS, "input": [text(request, row) for row in range(INPUTS_PER_REQUEST)]}
    try:
        response = await client.post(f"{url}/v1/embeddings", json=body)
    except httpx.HTTPError:
        return request, 0, None
    if response.status_code != 200:
        return request, response.status_code, None
    return request, 200, [row["embedding"] for row in response.json()["data"]]


async def calibrate(client: httpx.AsyncClient, url: str) -> float:
    """Requests per second served with a few requests always in flight (all within the queue)."""
    served, numbers, deadline = 0, iter(range(10**6, 2 * 10**6)), time.monotonic() + CALIBRATION_S
    start = time.monotonic()

    async def worker() -> None:
        nonlocal served
        while time.monotonic() < deadline:
            _, status, _ = await embed(client, url, next(numbers))
            assert status in (200, 429), status
            served += status == 200

    await asyncio.gather(*(worker() for _ in range(4)))
    return served / (time.monotonic() - start)


async def offer(client: httpx.AsyncClient, url: str, rate: float) -> list[tuple[int, int, list | None]]:
    """Send requests open-loop at ``rate`` per second for ``LOAD_S`` seconds; every answer."""
    tasks, start = [], time.monotonic()
    for request in range(int(rate * LOAD_S)):
        await asyncio.sleep(max(0.0, start + request / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(embed(client, url, request)))
    return await asyncio.gather(*tasks)


def test_ten_times_the_load_is_shed_with_429_and_nothing_else(shedding_server: RunningServer) -> None:
    url, pid = shedding_server.url, shedding_server.process.pid
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)

    async def run() -> tuple[float, list]:
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120, pool=None)) as client:
            served_rate = await calibrate(client, url)
            return served_rate, await offer(client, url, OVERLOAD * served_rate)

    before = memory_kib(pid)
    served_rate, answers = asyncio.run(run())
    after = memory_kib(pid)
    statuses = Counter(status for _, status, _ in answers)
    print(f"\noverload: served {served_rate:.1f} req/s ({served_rate * INPUTS_PER_REQUEST:.0f} texts/s) in "
          f"calibration, offered {OVERLOAD * served_rate:.1f} req/s for {LOAD_S} s: {dict(statuses)}; "
          f"server RSS {before['VmRSS'] // 1024} MiB before (peak {before['VmHWM'] // 1024} MiB), peak "
          f"(VmHWM) {after['VmHWM'] // 1024} MiB after")
    assert set(statuses) <= {200, 429}, statuses  # no 5xx, no 408, no dropped connection
    assert statuses[429] > 0 and statuses[200] > 0  # it shed load, and kept serving meanwhile
    assert after["VmHWM"] - before["VmRSS"] < 512 * 1024, after  # bounded by the queue, not the offer

    normal = httpx.post(f"{url}/v1/embeddings", json={"model": DEFAULT_ALIAS, "input": ["right after"]},
                        timeout=60)
    assert normal.status_code == 200  # serves normally the moment the load stops

    # no response mixes rows between requests: each row is its own text's embedding
    answered = [(request, vectors) for request, status, vectors in answers if status == 200]
    texts = [text(request, row) for request, _ in answered for row in range(INPUTS_PER_REQUEST)]
    got = np.array([row for _, vectors in answered for row in vectors])
    for start in range(0, len(texts), 64):
        again = {"model": DEFAULT_ALIAS, "input": texts[start:start + 64]}
        alone = httpx.post(f"{url}/v1/embeddings", json=again, timeout=120)
        assert alone.status_code == 200
        expected = np.array([row["embedding"] for row in alone.json()["data"]])
        np.testing.assert_allclose(got[start:start + 64], expected, atol=1e-4)
