"""Shutdown never accepts a connection and then closes it unanswered (``gateway.http.shutdown``).

The two moments that did it are set up exactly, on one event loop: connections the kernel accepted while
the loop had not yet taken them (closing the listener reset them), and a connection taken whose request
came only after shutdown began (it was closed without a response). Both must now be answered, with
``Connection: close``, and new connections refused.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from gateway.http.shutdown import DrainingHttpToolsProtocol, GatewayServer

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def hello(scope, receive, send) -> None:
    """The smallest ASGI app: 200 ``ok``."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def until(condition, what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def read_all(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), 30)
    except ConnectionError as exc:
        return f"{type(exc).__name__}".encode()


async def shut_down_with_connections_on_their_way() -> tuple[list[bytes], bool]:
    """The answers of 3 connections in the listen backlog and 1 whose request came after shutdown began,
    and whether a new connection was refused afterwards."""
    config = uvicorn.Config(hello, host="127.0.0.1", port=0, loop="asyncio", lifespan="off",
                            http=DrainingHttpToolsProtocol, log_config=None, log_level="warning")
    config.load()
    server = GatewayServer(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    port = server.servers[0].sockets[0].getsockname()[1]

    late_reader, late_writer = await asyncio.open_connection("127.0.0.1", port)
    await until(lambda: len(server.server_state.connections) == 1, "the server to take the connection")
    # Blocking connects complete in the kernel; the loop cannot take them before shutdown's first step,
    # which runs ahead of the listener's accept callback.
    backlog = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    for sock in backlog:
        sock.sendall(REQUEST)
    shutdown = asyncio.ensure_future(server.shutdown())
    await until(lambda: not server.servers[0].is_serving(), "the listener to close")
    late_writer.write(REQUEST)  # the request of a connection taken before shutdown
    streams = [await asyncio.open_connection(sock=sock) for sock in backlog]
    answers = [await read_all(reader) for reader, _ in [*streams, (late_reader, late_writer)]]
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    await asyncio.wait_for(shutdown, 30)
    for _, writer in [*streams, (late_reader, late_writer)]:
        writer.close()
    return answers, refused


def test_connections_on_their_way_at_shutdown_are_answered_and_new_ones_refused():
    answers, refused = asyncio.run(shut_down_with_connections_on_their_way())
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer
        assert b"connection: close" in answer.lower()
    assert refused
