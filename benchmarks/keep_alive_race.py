"""Reproduce the keep-alive race: a request sent on a pooled connection just as the server closes it.

Against a running server, 200 clients each send one request, leave their connection idle for a time
spread around ``idle_s`` (``idle_s`` +/- 0.5 s), and send a second request on it, while two other
clients keep the server's event loop busy decoding large token-id requests (a busy loop runs its
keep-alive timer before reading the request already waiting on the socket). Prints how the second
requests went: ``ok`` (same connection), ``closed`` (the client saw the close and reconnected, harmless)
or the transport error a client would have raised.

Measured on the 2-core box, ``idle_s = 4.8``: uvicorn's 5 s keep-alive gave 16 ``RemoteProtocolError``
of 200; with ``keep_alive_timeout_s = 75`` 200 ``ok``, at 4.8 and at 15 s.
Run: ``python benchmarks/keep_alive_race.py URL [idle_s]`` (e.g. ``http://127.0.0.1:8000 4.8``).
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys

import httpx

MODEL = "all-MiniLM-L6-v2"


async def reuse_after(url: str, idle_s: float) -> str:
    """One request, ``idle_s`` of idle connection, one more on it: what happened to the second."""
    limits = httpx.Limits(max_connections=1, keepalive_expiry=None)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        first = await client.get(f"{url}/ready")
        port = first.extensions["network_stream"].get_extra_info("client_addr")[1]
        await asyncio.sleep(idle_s)
        try:
            second = await client.get(f"{url}/ready")
        except httpx.TransportError as exc:
            return type(exc).__name__
        same = second.extensions["network_stream"].get_extra_info("client_addr")[1] == port
        return "ok" if same else "closed"


async def keep_busy(url: str, stop: asyncio.Event) -> None:
    """Send 500 x 500 token ids again and again: their decoding holds the event loop."""
    ids = [[random.randrange(1000, 20000) for _ in range(500)] for _ in range(500)]
    async with httpx.AsyncClient(timeout=300) as client:
        while not stop.is_set():
            await client.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": ids})


async def main(url: str, idle_s: float) -> None:
    stop = asyncio.Event()
    busy = [asyncio.create_task(keep_busy(url, stop)) for _ in range(2)]
    idles = [idle_s - 0.5 + i * 0.005 for i in range(200)]
    outcomes = await asyncio.gather(*(reuse_after(url, idle) for idle in idles))
    stop.set()
    for task in busy:
        task.cancel()
    print(dict(collections.Counter(outcomes)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 4.8))
