"""A graceful shutdown that never accepts a connection and then closes it unanswered.

On SIGTERM uvicorn stops listening, closes every connection without a request in progress, lets the
requests in flight finish (``shutdown_timeout_s``), then runs the lifespan shutdown. Two kinds of
connection died unanswered in that sequence (a client sees ``RemoteProtocolError`` /
``ServerDisconnectedError``, not a refusal it could retry elsewhere):

- connections the kernel had accepted but the event loop had not yet taken: closing the listening
  socket resets them. ``GatewayServer`` first takes every one waiting, then closes the listener: from
  then on new connections are refused.
- connections taken whose request had not arrived yet (or only in part). ``DrainingHttpToolsProtocol``
  answers their request (then closes; ``Connection: close``) and closes them only if nothing comes within
  ``REQUEST_GRACE_S``. A keep-alive connection idle after a response is closed at once, as before: the
  client's pool sees the close like any keep-alive expiry.

Built on uvicorn's ``Server`` and ``HttpToolsProtocol`` (``uvicorn[standard]``): its shutdown steps are
documented in ``uvicorn.server.Server.shutdown``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.http.head_with_body import head_with_body

log = logging.getLogger(__name__)
REQUEST_GRACE_S = 5.0  # a client sends its request right after connecting; this bounds one that does not


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, whose graceful shutdown answers a request already on its way, and
    which writes each response's head together with its body (``gateway.http.head_with_body``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.began = False  # a request began arriving on this connection
        self.receiving = False  # a request's headers are arriving
        self.draining = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.began = self.receiving = True

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        self.receiving = False
        if self.cycle is not None and self.cycle is not previous:  # a new request (not an upgrade)
            self.cycle.send = head_with_body(self.cycle)
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answer, then close: the listener is gone

    def shutdown(self) -> None:
        """Called by the server on SIGTERM: close now, unless a request is (or may be) on its way."""
        self.draining = True
        idle = self.cycle is None or self.cycle.response_complete
        if idle and (self.receiving or not self.began):
            self.loop.call_later(REQUEST_GRACE_S, self._close_if_idle)
            return
        super().shutdown()

    def _close_if_idle(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


class GatewayServer(uvicorn.Server):
    """uvicorn's server, taking the connections waiting in the listen backlog before it stops listening."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        waiting = self._stop_listening()
        if waiting:
            log.info("Taking %d connections that arrived as the server stopped listening", len(waiting))
        loop = asyncio.get_running_loop()
        for connection in waiting:
            connection.setblocking(False)
            try:
                await loop.connect_accepted_socket(self._draining_protocol, connection)
            except OSError:  # the client went away meanwhile
                connection.close()
        await super().shutdown(sockets)  # closes the (already closed) listeners, then drains as usual

    def _draining_protocol(self) -> asyncio.Protocol:
        """A protocol for a connection taken during shutdown: it answers one request, then closes."""
        protocol = self.config.http_protocol_class(config=self.config, server_state=self.server_state,
                                                   app_state=self.lifespan.state)
        protocol.draining = True
        return protocol

    def _stop_listening(self) -> list[socket.socket]:
        """Accept what the kernel queued on every listening socket, then close them, with no await in
        between (a connection arriving meanwhile would be reset): from here on, new ones are refused."""
        waiting: list[socket.socket] = []
        duplicates = []
        for server in self.servers:
            for listener in server.sockets:
                # the same listening socket, under a descriptor we can accept on
                duplicate = socket.socket(fileno=os.dup(listener.fileno()))
                duplicate.setblocking(False)
                duplicates.append(duplicate)
                while True:
                    try:
                        waiting.append(duplicate.accept()[0])
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # e.g. too many open files: leave the rest to the kernel
                        break
        for server in self.servers:
            server.close()
        for duplicate in duplicates:
            duplicate.close()
        return waiting
