"""One socket write per response: the response head goes out with the first part of its body.

uvicorn's HTTP/1.1 protocol writes the status line and headers as soon as the app sends
``http.response.start``, and the body with the next ``http.response.body``: two ``send`` syscalls and two
TCP segments for every JSON answer. On loopback each write runs the receiver's whole TCP input path and
wakes the client, which parses the head and then waits for the body. Holding the head until the first
body message and writing both at once, as hyper (TEI) and granian do, took 0.01-0.11 ms (mean 0.05)
off a lone one-text request on the 2-core box (the head's write, 0.10-0.14 ms, went; the client's read
grew by 0.02-0.09 ms; ``benchmarks/lone_request_timeline.py``) and one syscall off every response.

The head is held only until the app's next message, so a streamed response still starts with its first
chunk; a response whose app fails before any body is never started, and uvicorn answers 500 as it would
have before its head was sent. A body part over ``JOIN_MAX_BYTES`` is written after the head as before:
joining would copy it on the event loop (a 40 MB float response, twice), which costs more than the
second write saves. Used by ``gateway.http.shutdown.DrainingHttpToolsProtocol``; the ASGI
messages themselves are unchanged (https://asgi.readthedocs.io/en/latest/specs/www.html#response-start-send-event).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict], Awaitable[None]]
JOIN_MAX_BYTES = 64 * 1024  # body parts up to this size leave with the head; larger ones on their own


class _WriteBatch:
    """Stands in for the connection's transport while the head and the first body part are written:
    collects their bytes, and a close the cycle asks for (``Connection: close``), for ``flush``."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._parts: list[bytes] = []
        self._close = False

    def write(self, data: bytes) -> None:
        self._parts.append(data)  # not copied: a small head and body part (ASGI bodies are bytes)

    def close(self) -> None:
        self._close = True

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info...: the real transport's
        return getattr(self._transport, name)

    def flush(self) -> None:
        """Write what was collected in one call, then close if the cycle asked to."""
        if self._parts and not self._transport.is_closing():
            self._transport.write(b"".join(self._parts))
        if self._close:
            self._transport.close()


def head_with_body(cycle: Any) -> Send:
    """A ``send`` for uvicorn's ``RequestResponseCycle`` ``cycle`` that holds ``http.response.start`` until
    the next message and writes the two through one ``transport.write`` (when that message's body is at
    most ``JOIN_MAX_BYTES``). Assign it to ``cycle.send`` before the cycle's ASGI task runs."""
    original: Send = cycle.send
    held: dict | None = None

    async def send(message: dict) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and not cycle.response_started:
            held = message  # a second start replaces one never sent (uvicorn's 500 after a failed app)
            return
        if held is None:
            await original(message)
            return
        start, held = held, None
        if len(message.get("body", b"")) > JOIN_MAX_BYTES:
            await original(start)
            await original(message)
            return
        transport, batch = cycle.transport, _WriteBatch(cycle.transport)
        cycle.transport = batch
        try:
            await original(start)
            await original(message)
        finally:
            cycle.transport = transport
            batch.flush()

    return send
