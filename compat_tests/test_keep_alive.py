"""Idle keep-alive connections are reused without a single transport error.

A server that closes idle connections after 5 s (uvicorn's default) races every client pool that keeps
them longer (aiohttp: 15 s, requests/urllib3: no limit) or as long (httpx: 5 s): a request sent just as
the server closes its connection dies with ``RemoteProtocolError`` / ``ClientOSError`` / ``ReadError``
and nothing in the server log. The gateway keeps idle connections ``keep_alive_timeout_s`` (75 s), longer
than common pools, so the client always closes first.
"""

from __future__ import annotations

import asyncio

import httpx

from gateway.config import Settings

UVICORN_DEFAULT_S = 5.0  # the old keep-alive timeout
# 1 to 30 s, and a cluster around the old timeout, where the race was (idles run concurrently: ~30 s)
IDLES_S = sorted({*map(float, range(1, 31)), *(UVICORN_DEFAULT_S + k / 50 for k in range(-5, 6))})


def client_port(response: httpx.Response) -> int:
    """The local port of the connection that carried ``response`` (the same port: the same connection)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


async def reuse_after(url: str, idle_s: float) -> str | None:
    """One request, ``idle_s`` seconds of idle connection, one more: None if both were answered on the
    same connection, else what went wrong."""
    limits = httpx.Limits(max_connections=1, keepalive_expiry=None)  # the pool never drops it first
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        first_port = client_port(await client.get(f"{url}/ready"))
        # the idle time is what this test is about, not a wait for something to happen
        await asyncio.sleep(idle_s)
        try:
            second = await client.get(f"{url}/ready")
        except httpx.TransportError as exc:
            return f"idle {idle_s:g} s: {type(exc).__name__}: {exc}"
        if second.status_code != 200:
            return f"idle {idle_s:g} s: status {second.status_code}"
        if client_port(second) != first_port:
            return f"idle {idle_s:g} s: the server had closed the connection"
        return None


def test_the_keep_alive_timeout_outlasts_common_client_pools():
    assert Settings.model_fields["keep_alive_timeout_s"].default > 15  # aiohttp's pool keeps 15 s


def test_connections_idle_up_to_30_s_are_reused_without_an_error(server):
    async def every_idle() -> list[str | None]:
        return await asyncio.gather(*(reuse_after(server.url, idle) for idle in IDLES_S))

    failures = [failure for failure in asyncio.run(every_idle()) if failure]
    assert not failures, failures
