"""The server's HTTP/1.1 protocol writes a response's head and the first part of its body in one write
(``gateway.http.head_with_body``), and the ASGI exchange is otherwise what uvicorn does: streamed
chunks follow one by one, ``Connection: close`` closes after the bytes, an app that fails before its
body gets uvicorn's 500. Driven through uvicorn's real protocol class with a transport that records
each write, so the assertion is on the syscalls the server makes, not on how TCP happened to split them.
"""

from __future__ import annotations

import asyncio

import httpx
import uvicorn
from uvicorn.server import ServerState

from gateway.http.head_with_body import JOIN_MAX_BYTES
from gateway.http.shutdown import DrainingHttpToolsProtocol


class RecordingTransport(asyncio.Transport):
    """Collects every ``write`` and whether the connection was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.closed_by_server = False  # before the test ended the connection

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        pass


def exchange(app, request: bytes) -> RecordingTransport:
    """Feed ``request`` to a fresh connection of the server's protocol serving ``app``; run until the
    app is done; return the transport with what was written."""

    async def main() -> RecordingTransport:
        config = uvicorn.Config(app, lifespan="off", log_config=None, log_level="critical",
                                http=DrainingHttpToolsProtocol)
        config.load()
        state = ServerState()
        protocol = DrainingHttpToolsProtocol(config=config, server_state=state, app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        while state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)
        transport.closed_by_server = transport.closed
        protocol.connection_lost(None)
        return transport

    return asyncio.run(main())


GET = b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n"


def parse(raw: bytes) -> httpx.Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


async def json_app(scope, receive, send):
    body = b'{"object": "list"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_a_response_goes_out_in_one_write():
    transport = exchange(json_app, GET)
    assert len(transport.writes) == 1
    response = parse(transport.writes[0])
    assert response.status_code == 200 and response.json() == {"object": "list"}
    assert response.headers["content-type"] == "application/json"
    assert not transport.closed_by_server  # keep-alive


def test_connection_close_is_written_then_closed():
    transport = exchange(json_app, b"GET /x HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    assert len(transport.writes) == 1 and transport.closed_by_server
    assert parse(transport.writes[0]).json() == {"object": "list"}


def test_a_streamed_response_starts_with_its_first_chunk_and_keeps_the_rest_apart():
    async def streaming(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})  # chunked
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    transport = exchange(streaming, GET)
    assert len(transport.writes) == 3
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n3\r\none\r\n")  # the head, then the first chunk
    assert transport.writes[1:] == [b"3\r\ntwo\r\n", b"0\r\n\r\n"]


def test_an_app_failing_after_its_head_gets_a_clean_500():
    async def failing(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    transport = exchange(failing, GET)
    # the held head was never sent, so uvicorn can still answer 500 (before, the client got a 200 head
    # and then a closed connection)
    assert len(transport.writes) == 1
    assert parse(transport.writes[0]).status_code == 500


def test_head_requests_and_empty_bodies_are_answered():
    async def empty(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = exchange(empty, GET)
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 204 No Content\r\n")
    transport = exchange(json_app, b"HEAD /x HTTP/1.1\r\nHost: test\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"\r\n\r\n")  # the head alone: no body on HEAD


def test_a_big_body_is_not_copied_to_join_its_head():
    # joining would copy megabytes on the event loop (compat_tests/test_event_loop_stalls.py): the head
    # goes out alone, then the body as the app gave it
    body = b"x" * (JOIN_MAX_BYTES + 1)

    async def big(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    transport = exchange(big, GET)
    assert len(transport.writes) == 2
    head, sent = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert sent is body
