"""Cross-request dynamic batching: one ``Runner`` per model owns the only threads that call its engine.

Requests submit tokenized inputs; a free runner thread blocks for the first waiting item, then takes
everything else that queued meanwhile (requests pile up while the engine is busy: that is the batching
window, no sleeps), forgets items whose request is already done (cancelled by a client disconnect or
a timeout, or failed), and cuts a length-sorted batch on the padded-token budget (``PendingQueue``).
The batch that runs next holds an input of the request with the fewest tokens still queued (shortest
remaining work first, ``batch_queue``), so a one-text query is not stuck behind bulk requests. An engine
exception fails exactly the requests in that batch; the thread lives on and ``stats.failing`` says so.
A request's rows are assembled under the runner's lock: two lanes may finish batches of one request at
the same moment (``tests/test_runner_race.py``).

The runner has one thread per engine lane. That is one, except for torch on CPU (two by default), where
small batches use the cores better side by side, each pass on its share of the intra-op threads, than one
at a time across all of them (``gateway.engines.torch.engine.lanes_for``); a lane running alone with nothing
else waiting takes every core, so a lone request is as fast as before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

import numpy as np

from gateway.engines import RAGGED_OUTPUTS, Engine, Tokens
from gateway.errors import EngineFailure, NotReady, Overloaded
from gateway.serving import request_context
from gateway.serving.admission import SMALL_SHARE
from gateway.serving.batch_queue import Item, Job, Kind, PendingQueue, item_key
from gateway.serving.batch_stats import BatchStats, default_batch_tokens

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 60
# A request with at most batch_tokens / SMALL_BATCH_SHARE tokens queued (a query, a few short texts) runs in
# a batch of such small requests only, not in one filled up with bulk inputs (``PendingQueue.take_batch``)
SMALL_BATCH_SHARE = 8
INTERACTIVE_WINDOW_S = 5.0  # how long after a small request bulk batches stay halved
# job kind -> the engine method that runs it; "spans" (late chunking) is optional, only its callers use it.
# The other kinds are outputs of ``Engine.forward(batch, output)`` (FORWARD_KINDS), also optional.
ENGINE_CALLS: dict[Kind, str] = {"embed": "embed", "score": "score", "spans": "embed_spans"}
FORWARD_KINDS: tuple[Kind, ...] = ("sparse", "multi_vector", "classify")  # Engine.forward(batch, kind)


class Runner:
    """The batching queue and engine threads (one per lane) of one model.

    Args:
        engine: the model's engine; only this runner's threads call ``embed`` / ``score``. Optional
            engine attributes: ``lanes`` (forward passes that may run at once, default 1) and
            ``share_cores(n, padded_tokens)``, called on a lane thread before each batch with how many
            lanes share the cores during it and the batch's padded tokens (rows x longest input).
        batch_tokens: padded-token budget of one forward pass (longest input x batch size); None:
            ``default_batch_tokens`` of the engine's device.
        max_queue_tokens: tokens allowed to wait; beyond it ``run`` raises ``Overloaded`` (429). A small
            request (at most 1% of it, e.g. one query) is bounded only by ``max_queue_wait_s`` (the
            ingress's admission bounds their number, ``gateway.serving.admission``), so bulk requests
            that keep the queue full never lock interactive ones out.
        max_queue_wait_s: the longest a request may wait for the work that runs before it, at the
            engine's measured speed, before ``run`` raises ``Overloaded``: bounds the wait of what is
            admitted, whatever the speed of the machine (None: no bound but ``max_queue_tokens``). With
            shortest-remaining-first, what runs before a request of ``n`` tokens is about ``min(t, n)``
            of each queued request's ``t``. The speed is measured on batches of at least a quarter of
            ``batch_tokens``; until one ran, only ``max_queue_tokens`` applies.
        on_batch: optional callback ``(size, padded_tokens, ms)`` after each successful batch.
        in_flight: optional count of this model's requests the server holds (admitted, not yet answered),
            read from the lane threads; a batch takes every core only when no other request is on its way.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        batch_tokens: int | None = None,
        max_queue_tokens: int = 4_000_000,
        max_queue_wait_s: float | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.engine = engine
        self.batch_tokens = batch_tokens or default_batch_tokens(engine.spec.device)
        self.max_queue_tokens = max_queue_tokens
        self.max_queue_wait_s = max_queue_wait_s
        self.on_batch = on_batch
        self.in_flight = in_flight
        self.stats = BatchStats(speed_min_tokens=self.batch_tokens // 4)  # speed of substantial batches
        kinds = (*ENGINE_CALLS, *FORWARD_KINDS)
        self._queues: dict[Kind, PendingQueue] = {kind: PendingQueue() for kind in kinds}
        self._queued_items = 0
        self._queued_tokens = 0
        self._has_finished_jobs = False  # a done job may still have items queued: purge them
        self._cond = threading.Condition()
        self._arrivals = itertools.count()
        self._stopping = False
        self.lanes = max(1, getattr(engine, "lanes", 1))
        self._running = 0  # lanes inside a forward pass
        self._small_seen = -math.inf  # when a small request's batch was last taken (monotonic s)
        self._threads = [
            threading.Thread(target=self._loop, name=f"runner:{engine.spec.name}:{i}", daemon=True)
            for i in range(self.lanes)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queued_items(self) -> int:
        """Inputs waiting for the engine (those of finished requests excluded)."""
        return self._queued_items

    @property
    def queued_tokens(self) -> int:
        """Tokens waiting for the engine (those of finished requests excluded)."""
        return self._queued_tokens

    @property
    def alive(self) -> bool:
        """Whether every engine thread is running."""
        return all(thread.is_alive() for thread in self._threads)

    async def run(self, kind: Kind, inputs: list[Tokens], *, background: bool | None = None) -> np.ndarray:
        """Queue ``inputs`` and wait for their results, in input order.

        ``background`` work (a batch job's lines) is taken only when no interactive input waits; None:
        the current request's (``request_context.is_background``). A Ray replica is told by its ingress.

        Cancelling the awaiting task (client gone, timeout) drops its inputs that have not reached the
        engine yet.

        Returns:
            ``(n, dim)`` float32 embeddings for ``embed``, ``(n,)`` float32 scores for ``score``,
            ``(n, labels)`` float32 class logits for ``classify``; for ``spans``, send one ``SpanTokens``:
            ``(1, spans, dim)``, its spans pooled; for ``sparse`` and ``multi_vector``, a list of ``n`` rows
            (``SparseVector`` / ``(tokens, dim)`` float32) from ``Engine.forward``.

        Raises:
            Overloaded: the queue already holds ``max_queue_tokens`` tokens, or would take more than
                ``max_queue_wait_s`` to drain with these inputs (a request larger than either is admitted
                only into an empty queue); ``Retry-After`` estimates the wait.
            NotReady: the runner is stopping (server shutdown).
            EngineFailure: the engine raised while running a batch holding these inputs, or returned a
                NaN or an infinity for one of them (counted in ``stats.non_finite``).
        """
        if not inputs:
            if kind in RAGGED_OUTPUTS:
                return []
            return np.zeros((0, self.engine.spec.dim) if kind == "embed" else (0,), np.float32)
        if background is None:
            background = request_context.is_background()
        loop = asyncio.get_running_loop()
        tokens = sum(len(t) for t in inputs)
        count = len(inputs)
        job = Job(kind, loop, loop.create_future(), size=count, queued=count, queued_tokens=tokens,
                  remaining=count, priority=1 if background else 0)
        items = [Item(job, i, t, item_key(len(t), next(self._arrivals))) for i, t in enumerate(inputs)]
        with self._cond:
            self._admit(tokens)
            self._queues[kind].add(items)
            self._queued_items += job.queued
            self._queued_tokens += tokens
            self._cond.notify()
        request_context.count_work(len(inputs), tokens)  # for the request's log line and metrics
        try:
            return await job.future
        except asyncio.CancelledError:
            with self._cond:
                self._retire(job)
            raise

    def _admit(self, tokens: int) -> None:
        """Raises NotReady when stopping, Overloaded when ``tokens`` more would overflow the queue."""
        if self._stopping or not self.alive:
            raise NotReady(f"model {self.engine.spec.name!r} is shutting down")
        # a small request is bounded by the wait alone: the admission's pool for small requests bounds
        # how many there are, and bulk work that fills the queue must not lock them out
        small = tokens <= self.max_queue_tokens * SMALL_SHARE
        full = not small and self._queued_tokens + tokens > self.max_queue_tokens
        slow = False
        if self.max_queue_wait_s is not None and self.stats.tokens_per_s:
            ahead = sum(min(job.queued_tokens, tokens) for q in self._queues.values() for job in q.jobs())
            slow = self._drain_s(ahead + tokens) > self.max_queue_wait_s
        if self._queued_tokens and (full or slow):
            raise Overloaded(
                f"model {self.engine.spec.name!r} is overloaded: its queue is full, retry later",
                retry_after_s=self._retry_after_s(),
            )

    def _drain_s(self, tokens: int) -> float:
        """Seconds the engine's lanes need for ``tokens`` at their recent speed (0 before any batch)."""
        speed = self.stats.tokens_per_s
        if not speed:
            return 0.0
        return tokens / (speed * self.lanes)

    def _retry_after_s(self) -> int:
        """Seconds the engine needs to drain the current queue, from its recent speed (1..60)."""
        speed = self.stats.tokens_per_s
        if not speed:
            return 1
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(self._queued_tokens / speed)))

    def _retire(self, job: Job) -> None:
        """Mark ``job`` done and release its queued inputs from the accounting (lock held)."""
        if job.done:
            return
        job.done = True
        if job.queued:  # some of its inputs still wait in a queue: the runner purges them
            self._queued_items -= job.queued
            self._queued_tokens -= job.queued_tokens
            self.stats.dropped_items += job.queued
            job.queued = job.queued_tokens = 0
            self._has_finished_jobs = True

    def stop(self) -> None:
        """Refuse new inputs and let the threads exit once the queue is empty (queued work finishes)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def join(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for each engine thread to exit (after ``stop``)."""
        for thread in self._threads:
            thread.join(timeout_s)

    def _take_batch(self) -> tuple[list[Item], int] | None:
        """Block for work and remove the next batch (None once stopping with an empty queue).

        Also returns how many lanes will share the cores during this batch: 1 when no other lane is
        running and nothing else waits, else all of them.
        """
        with self._cond:
            while True:
                if self._has_finished_jobs:
                    for queue in self._queues.values():
                        queue.drop_finished()
                    self._has_finished_jobs = False
                heads = [(item.job.priority, item.job.queued_tokens, item.arrival, kind, item)
                         for kind, q in self._queues.items() if (item := q.first_of_shortest_job())]
                wait_s = self._lane_kept_for_queries(min(heads, key=lambda head: head[:3])) if heads else None
                if heads and wait_s is None:
                    break
                if self._stopping and not heads:
                    return None
                self._cond.wait(wait_s)
            *_, kind, anchor = min(heads, key=lambda head: head[:3])
            small, now = self.batch_tokens // SMALL_BATCH_SHARE, time.monotonic()
            if anchor.job.queued_tokens <= small and not anchor.job.priority:
                self._small_seen = now
            # while small requests keep coming, bulk batches are cut at half the budget on CPU lanes: a
            # lane frees twice as often, halving what a query waits for (MiniLM on the shared 2-core
            # box showed no consistent speed difference between 1,024 and 2,048 padded tokens)
            interactive = now - self._small_seen < INTERACTIVE_WINDOW_S
            budget = self.batch_tokens // 2 if interactive and self.lanes > 1 else self.batch_tokens
            batch = self._queues[kind].take_batch(budget, anchor, small)
            for item in batch:
                item.job.queued -= 1
                item.job.queued_tokens -= len(item.tokens)
            self._queued_items -= len(batch)
            self._queued_tokens -= sum(len(item.tokens) for item in batch)
            sharing = 1 if self._alone(batch) else self.lanes
            self._running += 1
            if self._queued_items:  # wake an idle lane for the rest
                self._cond.notify()
            return batch, sharing

    def _alone(self, batch: list[Item]) -> bool:
        """Whether ``batch`` may take every core: no other lane runs, nothing else is queued, and no other
        request of this model is on its way (``in_flight``: being parsed or tokenized). Lock held.

        Why the last condition: one-text requests at concurrency 32 empty the queue at every take, so a lane
        often finds the other idle for a moment; its 8 texts on both cores left the next arrivals a lane
        on an oversubscribed core, where two one-core passes side by side run 21% more texts (MiniLM
        bfloat16, 8 texts a pass: 677 against 558 texts/s on the 2-core box, ``benchmarks/lane_capacity.py``).
        """
        if self._running or self._queued_items:
            return False
        if self.in_flight is None:
            return True
        return self.in_flight() <= len({id(item.job) for item in batch})

    def _lane_kept_for_queries(self, head: tuple) -> float | None:
        """Seconds this lane should wait before taking ``head``, or None to take it now.

        While small interactive requests keep coming (within ``INTERACTIVE_WINDOW_S``), background work (a
        batch job's lines) may use every lane but one: a query then finds a free lane instead of waiting
        for a bulk forward pass to end. With one lane there is nothing to keep; once the window has
        passed, background work takes every lane again. Called under the lock.
        """
        if not head[0] or self.lanes < 2 or self._running < self.lanes - 1 or self._stopping:
            return None
        left = INTERACTIVE_WINDOW_S - (time.monotonic() - self._small_seen)
        return left if left > 0 else None

    def _loop(self) -> None:
        share_cores = getattr(self.engine, "share_cores", None)
        while (taken := self._take_batch()) is not None:
            batch, sharing = taken
            try:
                padded = padded_tokens(batch)
                if share_cores is not None:
                    share_cores(sharing, padded)
                self._run_batch(batch, padded)
            except Exception as exc:  # noqa: BLE001 - any failure must reach every waiter; the thread lives
                self._fail(batch, exc)
            finally:
                with self._cond:
                    self._running -= 1

    def _run_batch(self, batch: list[Item], padded: int) -> None:
        kind = batch[0].job.kind
        tokens = [item.tokens for item in batch]
        start = time.perf_counter()
        if kind in ENGINE_CALLS:
            rows = getattr(self.engine, ENGINE_CALLS[kind])(tokens)
        else:
            rows = self.engine.forward(tokens, kind)
        ms = (time.perf_counter() - start) * 1000
        if len(rows) != len(batch):
            raise RuntimeError(f"the engine returned {len(rows)} rows for a batch of {len(batch)}")
        if bad := non_finite_rows(rows):  # before any row reaches a request (or the embedding cache)
            self._fail_non_finite(batch, bad)
        with self._cond:  # lanes finish batches concurrently
            self.stats.record(len(batch), padded, ms)
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), padded, ms)
            except Exception:  # noqa: BLE001 - a metrics hook must not fail the requests
                log.exception("on_batch callback failed")
        finished: list[Job] = []
        with self._cond:  # lanes finish batches of one request at once: its rows are assembled under the lock
            for item, row in zip(batch, rows, strict=True):
                job = item.job
                if job.done:
                    continue
                if job.out is None:  # ragged rows (sparse, multi-vector) differ in shape: a list
                    shape = (job.size, *np.shape(row))
                    job.out = [None] * job.size if kind in RAGGED_OUTPUTS else np.empty(shape, np.float32)
                job.out[item.index] = row
                job.remaining -= 1
                if job.remaining == 0:
                    finished.append(job)
        self._settle(finished, None)

    def _fail_non_finite(self, batch: list[Item], bad: list[int]) -> None:
        """Fail the requests owning the rows at ``bad`` (NaN or infinity: an fp16 overflow, broken weights):
        a 500 rather than ``null`` vectors or a NaN score that sorts last. The batch's other requests get
        their rows; the runner is not marked failing (the next inputs may be fine)."""
        jobs = list({id(batch[i].job): batch[i].job for i in bad if not batch[i].job.done}.values())
        with self._cond:
            self.stats.non_finite += len(bad)
        log.error("engine %s returned non-finite values (NaN or infinity) for %d of a batch of %d inputs; "
                  "%d requests fail", self.engine.spec.name, len(bad), len(batch), len(jobs))
        self._settle(jobs, EngineFailure("the model produced non-finite values (NaN or infinity) for this "
                                         "request's inputs; nothing was returned"))

    def _fail(self, batch: list[Item], exc: Exception) -> None:
        log.error("engine %s failed on a batch of %d", self.engine.spec.name, len(batch), exc_info=exc)
        self.stats.failing, self.stats.last_error = True, f"{type(exc).__name__}: {exc}"
        jobs = list({id(item.job): item.job for item in batch if not item.job.done}.values())
        self._settle(jobs, EngineFailure("the model failed to process this request; it was not retried"))

    def _settle(self, jobs: list[Job], error: BaseException | None) -> None:
        """Resolve (or fail) jobs: one wake-up per event loop, however many requests the batch served."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
        with self._cond:
            for job in jobs:
                self._retire(job)
                by_loop.setdefault(job.loop, []).append(job)
        for loop, loop_jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, loop_jobs, error)
            except RuntimeError:  # that event loop is closed: nobody is waiting any more
                log.debug("dropped results for a closed event loop")


def padded_tokens(batch: list[Item]) -> int:
    """The batch's size as one padded forward pass: rows x its longest input (tokens)."""
    return max(len(item.tokens) for item in batch) * len(batch)


def non_finite_rows(rows) -> list[int]:
    """Positions of the rows holding a NaN or an infinity: ``rows`` is an ``(n, ...)`` array (vectors,
    scores), a sequence of arrays (late chunking's span vectors, multi-vector rows) or of ``SparseVector``s
    (their values are checked). Cost: 0.4-0.9 ns per value on this
    2-core box (40 us for 256 x 384, 7 ms for 2,048 x 4,096), against forward passes of ms to seconds."""
    if isinstance(rows, np.ndarray):
        if np.isfinite(rows).all():  # the common case, in one call: 0.02 ms less per lone request
            return []
        finite = np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
        return np.flatnonzero(~finite).tolist()
    return [i for i, row in enumerate(rows) if not np.isfinite(np.asarray(getattr(row, "values", row))).all()]


def _resolve(jobs: list[Job], error: BaseException | None) -> None:
    """On the event loop: set each job's result or ``error`` unless its awaiting task was cancelled."""
    for job in jobs:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(job.out)
