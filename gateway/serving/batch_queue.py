"""Requests (``Job``), their inputs (``Item``) and the queue of inputs waiting for the engine
(``PendingQueue``): kept sorted by length, cut into batches on a padded-token budget.

Which batch runs next: the one holding an input of the request with the fewest tokens still queued
(shortest remaining work first; ties: the older). A one-text query therefore rides in the next batch
even while bulk requests hold a deep queue, and among bulk requests the one nearest completion finishes
first, which is what minimises the mean time to an answer. The batch around that input is still the
greedy length-sorted cut, so it fills with inputs of similar length from any request. A request is
passed over only while shorter requests keep the engine busy; the admission budget
(``gateway.serving.admission``) bounds how much such work can be in flight.

Every item carries one integer key, ``length << 40 | arrival``, so the pending list is a plain sorted
list of ints: merging new arrivals is one C-level sort (Timsort merges the sorted old run with the new
one in linear time) and finding a batch is a few binary searches. A deep queue (a million queued tokens
on a GPU) therefore costs well under a millisecond per batch instead of a full Python-level re-sort.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from gateway.engines import Tokens

# spans: late chunking (gateway.engines.text.late_chunking); classify: (labels,) class logits per input;
# sparse / multi_vector: ``Engine.forward`` outputs (ragged rows)
Kind = Literal["embed", "score", "spans", "classify", "sparse", "multi_vector"]

ARRIVAL_BITS = 40  # 10^12 inputs before the arrival counter would spill into the length bits
ARRIVAL_MASK = (1 << ARRIVAL_BITS) - 1


@dataclass(eq=False)
class Job:
    """One request's inputs; its rows land in ``out`` at their input index: an ``(n, ...)`` float32 array
    for fixed-shape rows (vectors, scores), a list for ragged ones (``engines.RAGGED_OUTPUTS``: a sparse
    vector or a ``(tokens, dim)`` array per input).

    A background request (``priority`` 1) is passed over while any interactive one has inputs waiting,
    and never joins the small requests' batches.

    ``queued`` / ``queued_tokens`` count its items not yet taken into a batch; ``done`` (resolved,
    failed or cancelled) makes the runner drop the rest. Both change only under the runner's lock.
    """

    kind: Kind
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    size: int
    queued: int
    queued_tokens: int
    remaining: int  # rows not computed yet
    out: np.ndarray | list | None = None
    done: bool = False
    priority: int = 0  # 0: interactive; 1: background (a batch job's line), taken only when no 0 waits


@dataclass(slots=True, eq=False)
class Item:
    """One input of a request: its rows go to ``job.out[index]``."""

    job: Job
    index: int
    tokens: Tokens
    key: int  # length << ARRIVAL_BITS | arrival number: ascending keys = by length, then oldest first

    @property
    def arrival(self) -> int:
        return self.key & ARRIVAL_MASK


def item_key(length: int, arrival: int) -> int:
    """The sort key of an input of ``length`` tokens that arrived ``arrival``-th."""
    return length << ARRIVAL_BITS | arrival


class PendingQueue:
    """Items waiting for the engine, sorted by length; not thread-safe (the runner holds its lock)."""

    def __init__(self) -> None:
        self._sorted: list[int] = []  # keys of waiting items, ascending (after _merge)
        self._fresh: list[int] = []  # keys added since the last merge
        self._items: dict[int, Item] = {}
        self._arrivals: deque[Item] = deque()  # arrival order; taken or dropped items are skipped lazily
        # id(job) -> (job, its items in arrival order; taken ones skipped lazily): jobs with items waiting
        self._jobs: dict[int, tuple[Job, deque[Item]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, items: list[Item]) -> None:
        """Queue items (O(k); they are sorted in when the next batch is taken)."""
        self._items.update((item.key, item) for item in items)
        self._fresh.extend(item.key for item in items)
        self._arrivals.extend(items)
        for item in items:
            entry = self._jobs.get(id(item.job))
            if entry is None:
                entry = self._jobs[id(item.job)] = (item.job, deque())
            entry[1].append(item)

    def oldest(self) -> Item | None:
        """The waiting item that arrived first, or None when empty."""
        while self._arrivals and self._arrivals[0].key not in self._items:
            self._arrivals.popleft()
        return self._arrivals[0] if self._arrivals else None

    def first_of_shortest_job(self) -> Item | None:
        """The oldest waiting input of the request with the fewest tokens queued (ties: the older
        request), interactive requests before background ones, or None when empty. O(requests waiting)."""
        best: Item | None = None
        for key in list(self._jobs):
            job, waiting = self._jobs[key]
            while waiting and waiting[0].key not in self._items:
                waiting.popleft()
            if not waiting:
                del self._jobs[key]
                continue
            head = waiting[0]
            if best is None or ((job.priority, job.queued_tokens, head.arrival)
                                < (best.job.priority, best.job.queued_tokens, best.arrival)):
                best = head
        return best

    def jobs(self) -> list[Job]:
        """The requests with inputs waiting here (a request may be listed after its last one was taken)."""
        return [job for job, _ in self._jobs.values()]

    def drop_finished(self) -> None:
        """Forget the items of requests that are already done (cancelled, timed out or failed)."""
        self._merge()
        self._sorted = [key for key in self._sorted if not self._items[key].job.done]
        self._items = {key: self._items[key] for key in self._sorted}
        self._jobs = {key: entry for key, entry in self._jobs.items() if not entry[0].done}

    def take_batch(self, budget: int, anchor: Item | None = None, small_tokens: int = 0) -> list[Item]:
        """Remove and return the batch holding ``anchor`` (default: the oldest item).

        Batches are the greedy cut of the length-sorted queue where ``longest * count`` would pass
        ``budget`` padded tokens (a single longer item forms a batch alone), so each batch holds inputs
        of similar length; the runner picks the anchor (``first_of_shortest_job``). When the anchor's
        request has at most ``small_tokens`` queued, the batch holds only the inputs of such small
        requests: a query's forward pass is not filled up with bulk inputs (on a CPU a full batch takes
        ~10x longer than a few queries).
        """
        self._merge()
        anchor = anchor or self.oldest()
        if anchor is None:
            return []
        if small_tokens and anchor.job.queued_tokens <= small_tokens and not anchor.job.priority:
            return self._take_small(budget, small_tokens)
        position = bisect_left(self._sorted, anchor.key)
        start = end = 0
        while end <= position:
            start, end = end, self._batch_end(end, budget)
        keys = self._sorted[start:end]
        del self._sorted[start:end]
        return [self._items.pop(key) for key in keys]

    def _take_small(self, budget: int, small_tokens: int) -> list[Item]:
        """The shortest inputs of interactive requests with at most ``small_tokens`` queued, within
        ``budget``."""
        keys = sorted(item.key for job, waiting in self._jobs.values()
                      if job.queued_tokens <= small_tokens and not job.priority
                      for item in waiting if item.key in self._items)
        end = 1
        while end < len(keys) and (keys[end] >> ARRIVAL_BITS) * (end + 1) <= budget:
            end += 1
        for key in keys[:end]:
            del self._sorted[bisect_left(self._sorted, key)]
        return [self._items.pop(key) for key in keys[:end]]

    def _merge(self) -> None:
        if self._fresh:
            self._sorted.extend(self._fresh)
            self._sorted.sort()
            self._fresh = []

    def _batch_end(self, start: int, budget: int) -> int:
        """Largest ``end`` with ``length(sorted[end - 1]) * (end - start) <= budget``, at least start + 1."""
        keys = self._sorted

        def over_budget(end: int) -> bool:
            return (keys[end - 1] >> ARRIVAL_BITS) * (end - start) > budget

        fitting = bisect_left(range(start + 1, len(keys) + 1), True, key=over_budget)
        return start + max(1, fitting)
