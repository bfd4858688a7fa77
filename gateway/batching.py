"""Cross-request dynamic batching: one ``Runner`` per model owns the only thread that calls its engine.

Requests submit tokenized inputs; the runner thread blocks for the first waiting item, then takes
everything else that queued meanwhile (requests pile up while the engine is busy: that is the batching
window, no sleeps), drops items whose request was cancelled, sorts by length and cuts batches where
``longest * count`` would exceed the padded-token budget. The batch that runs next is the one holding
the oldest waiting item, so no request starves behind a stream of newer ones. An engine exception
fails exactly the requests in that batch; the thread lives on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from gateway import request_context
from gateway.engines import Engine, Tokens
from gateway.errors import EngineFailure, Overloaded

log = logging.getLogger(__name__)
Kind = Literal["embed", "score"]


@dataclass(eq=False)
class _Job:
    """One request's inputs: its rows land in ``out`` at their input index."""

    kind: Kind
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    size: int
    remaining: int = 0
    out: np.ndarray | None = None
    done: bool = False  # resolved, failed or cancelled: its leftover items are dropped

    def finish(self, result: np.ndarray | None = None, error: BaseException | None = None) -> None:
        """Resolve the request's future from any thread (no-op once done)."""
        if self.done:
            return
        self.done = True
        self.loop.call_soon_threadsafe(_settle, self.future, result, error)


def _settle(future: asyncio.Future, result: np.ndarray | None, error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(slots=True)
class _Item:
    job: _Job
    index: int
    tokens: Tokens
    seq: int


@dataclass
class BatchStats:
    """What the runner observed, for health and metrics (times in ms)."""

    batches: int = 0
    items: int = 0
    last_batch_size: int = 0
    last_batch_tokens: int = 0
    last_batch_ms: float | None = None
    last_error: str | None = None
    failing: bool = False


def plan_batches(items: list[_Item], budget: int) -> list[list[_Item]]:
    """Sort items by length and cut consecutive batches where ``longest * count`` would exceed ``budget``.

    A single item longer than the budget still forms a batch of its own.
    """
    batches: list[list[_Item]] = []
    current: list[_Item] = []
    for item in sorted(items, key=lambda it: len(it.tokens)):
        if current and len(item.tokens) * (len(current) + 1) > budget:
            batches.append(current)
            current = []
        current.append(item)
    if current:
        batches.append(current)
    return batches


class Runner:
    """The batching queue and engine thread of one model.

    Args:
        engine: the model's engine; only this runner's thread calls ``embed`` / ``score``.
        batch_tokens: padded-token budget of one forward pass (longest input x batch size).
        max_queue_tokens: tokens allowed to wait; beyond it ``run`` raises ``Overloaded`` (429).
        on_batch: optional callback ``(size, padded_tokens, ms)`` after each successful batch.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        batch_tokens: int = 16384,
        max_queue_tokens: int = 4_000_000,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.batch_tokens = batch_tokens
        self.max_queue_tokens = max_queue_tokens
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._pending: list[_Item] = []
        self._queued_tokens = 0
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"runner:{engine.spec.name}", daemon=True)
        self._thread.start()

    @property
    def queued_items(self) -> int:
        """Inputs waiting for the engine."""
        return len(self._pending)

    @property
    def queued_tokens(self) -> int:
        """Tokens waiting for the engine."""
        return self._queued_tokens

    @property
    def alive(self) -> bool:
        """Whether the engine thread is running."""
        return self._thread.is_alive()

    async def run(self, kind: Kind, inputs: list[Tokens]) -> np.ndarray:
        """Queue ``inputs`` and wait for their results, in input order.

        Returns:
            ``(n, dim)`` float32 embeddings for ``embed``, ``(n,)`` float32 scores for ``score``.

        Raises:
            Overloaded: the queue already holds ``max_queue_tokens`` tokens (a request larger than the
                whole budget is admitted only into an empty queue).
            EngineFailure: the engine raised while running a batch holding these inputs.
        """
        if not inputs:
            return np.zeros((0, self.engine.spec.dim) if kind == "embed" else (0,), np.float32)
        loop = asyncio.get_running_loop()
        job = _Job(kind, loop, loop.create_future(), size=len(inputs), remaining=len(inputs))
        tokens = sum(len(t) for t in inputs)
        with self._cond:
            if self._queued_tokens and self._queued_tokens + tokens > self.max_queue_tokens:
                raise Overloaded(f"model {self.engine.spec.name!r} is overloaded: its queue is full, retry later")
            self._pending.extend(_Item(job, i, t, next(self._seq)) for i, t in enumerate(inputs))
            self._queued_tokens += tokens
            self._cond.notify()
        request_context.count_work(len(inputs), tokens)  # for the request's log line and metrics
        try:
            return await job.future
        except asyncio.CancelledError:
            job.done = True  # the runner drops its items that have not run yet
            raise

    def stop(self) -> None:
        """Let the thread exit once the queue is empty (in-flight batches finish)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _take_batch(self) -> list[_Item] | None:
        """Block for work, drop cancelled items, and remove and return the next batch."""
        with self._cond:
            while True:
                dropped = [it for it in self._pending if it.job.done]
                if dropped:
                    self._pending = [it for it in self._pending if not it.job.done]
                    self._queued_tokens -= sum(len(it.tokens) for it in dropped)
                if self._pending:
                    break
                if self._stopping:
                    return None
                self._cond.wait()
            oldest = min(self._pending, key=lambda it: it.seq)
            batch = next(b for b in plan_batches(self._pending, self.batch_tokens) if oldest in b)
            chosen = set(map(id, batch))
            self._pending = [it for it in self._pending if id(it) not in chosen]
            self._queued_tokens -= sum(len(it.tokens) for it in batch)
            return batch

    def _loop(self) -> None:
        while (batch := self._take_batch()) is not None:
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Item]) -> None:
        kind = batch[0].job.kind
        same_kind = [it for it in batch if it.job.kind == kind]
        if len(same_kind) < len(batch):  # mixed kinds: requeue the others for their own batch
            with self._cond:
                self._pending.extend(it for it in batch if it.job.kind != kind)
                self._queued_tokens += sum(len(it.tokens) for it in batch if it.job.kind != kind)
            batch = same_kind
        tokens = [it.tokens for it in batch]
        padded = max(len(t) for t in tokens) * len(tokens)
        start = time.perf_counter()
        try:
            rows = self.engine.embed(tokens) if kind == "embed" else self.engine.score(tokens)
        except Exception as exc:  # noqa: BLE001 - any engine failure must reach every waiter
            log.exception("engine %s failed on a batch of %d", self.engine.spec.name, len(batch))
            self.stats.failing, self.stats.last_error = True, f"{type(exc).__name__}: {exc}"
            error = EngineFailure("the model failed to process this request; it was not retried")
            for job in {id(it.job): it.job for it in batch}.values():
                job.finish(error=error)
            return
        ms = (time.perf_counter() - start) * 1000
        self._record(len(batch), padded, ms)
        for item, row in zip(batch, rows):
            job = item.job
            if job.done:
                continue
            if job.out is None:
                job.out = np.empty((job.size, *np.shape(row)), np.float32)
            job.out[item.index] = row
            job.remaining -= 1
            if job.remaining == 0:
                job.finish(result=job.out)

    def _record(self, size: int, padded: int, ms: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.items += size
        stats.last_batch_size, stats.last_batch_tokens, stats.last_batch_ms = size, padded, ms
        stats.failing, stats.last_error = False, None
        if self.on_batch is not None:
            self.on_batch(size, padded, ms)
