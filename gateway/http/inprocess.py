"""Answer a batch line in-process: the app's own ASGI handler called with a synthetic POST request.

Each line therefore goes through everything an online request goes through (routing, guards, the route's
body decoding, the service, the runner, the error handlers, the request log and metrics) and its answer
is byte for byte the route's. No socket is opened. The scope carries a ``BatchCaller`` under
``request_context.BATCH_SCOPE_KEY``, a key no HTTP server ever puts in a scope, so the guards take the
batch owner's API key without a credential, and the runner queues the work behind interactive requests.
"""

from __future__ import annotations

import asyncio

from litestar.types import ASGIApp, Message

from gateway.serving.jobs.worker import Answer
from gateway.serving.request_context import BATCH_SCOPE_KEY, BatchCaller


def make_dispatch(app: ASGIApp, token_share: float):
    """A ``Dispatch`` (``gateway.serving.jobs.worker``) calling ``app`` (a Litestar app) in-process."""

    async def dispatch(path: str, body: bytes, owner: str | None) -> Answer:
        return await call(app, path, body, BatchCaller(owner, token_share))

    return dispatch


async def call(app: ASGIApp, path: str, body: bytes, caller: BatchCaller) -> Answer:
    """POST ``body`` (JSON) to ``path`` of ``app`` and collect the response."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"host", b"localhost"),
        ],
        BATCH_SCOPE_KEY: caller,
    }
    answered = asyncio.Event()
    sent = False
    status, headers, chunks = 500, {}, []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # the route watches for a disconnect: there is none until it answered
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", ())
            }
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    finally:
        answered.set()
    retry = headers.get("retry-after")
    return Answer(
        status,
        headers.get("x-request-id", ""),
        b"".join(chunks),
        float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
    )
