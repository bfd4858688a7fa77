"""The one thread that tokenizes for a model, with a short lane: small calls never wait behind bulk ones.

A call is short when its caller says so (one query, a few texts: ``ServedModel.tokenize``); short calls
run before any waiting long one, each lane first in, first out. Bulk embedding requests are tokenized in
chunks (``service.TOKENIZE_CHUNK``), each submitted when the previous one finished, so a short call
waits at most for the one chunk in progress, not for whole 1,000-text requests. A call whose caller has
gone (cancelled: timeout, client disconnect) before it started is skipped.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future


class TokenizerQueue:
    """One worker thread named ``{name}``, two FIFO lanes (short first); ``ThreadPoolExecutor``-like.

    The thread starts on the first ``submit``, so a model that is never used costs no thread.
    """

    def __init__(self, name: str = "tokenizer") -> None:
        self.name = name
        self._lanes: tuple[deque, deque] = (deque(), deque())  # short, long
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, func: Callable, *args, short: bool = False, **kwargs) -> Future:
        """Queue ``func(*args, **kwargs)``; returns its ``concurrent.futures.Future``.

        Raises:
            RuntimeError: after ``shutdown``.
        """
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the tokenizer thread is shut down")
            self._lanes[0 if short else 1].append((future, func, args, kwargs))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return future

    def waiting(self) -> tuple[int, int]:
        """Calls waiting in the (short, long) lanes."""
        with self._cond:
            return len(self._lanes[0]), len(self._lanes[1])

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls, cancel waiting ones, and let the thread exit (``wait``: join it)."""
        with self._cond:
            self._stopping = True
            for lane in self._lanes:
                while lane:
                    lane.popleft()[0].cancel()
            self._cond.notify_all()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _next(self) -> tuple | None:
        with self._cond:
            while not (self._lanes[0] or self._lanes[1]):
                if self._stopping:
                    return None
                self._cond.wait()
            return (self._lanes[0] or self._lanes[1]).popleft()

    def _work(self) -> None:
        while (call := self._next()) is not None:
            future, func, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue  # its caller has gone
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
