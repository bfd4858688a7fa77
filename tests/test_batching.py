"""Unit tests of the batching ``Runner`` with a fake engine whose rows identify their inputs.

Each input is ``Tokens([uid] * length)``; the fake engine answers ``[uid, length, batch number]`` per
row and records every batch, so a test can check which rows came back to which request, in what order,
and which inputs ever reached the engine.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.engines import ModelSpec, Tokens
from gateway.errors import EngineFailure, NotReady, Overloaded
from gateway.serving.batch_queue import Item, PendingQueue, item_key
from gateway.serving.runner import Runner

WAIT_S = 10  # upper bound on any wait; tests finish far sooner


class FakeEngine:
    """Engine protocol stand-in: rows ``[uid, length, batch number]``; can be held busy or made to fail."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.spec = ModelSpec(name="fake", task="embed", max_tokens=100_000, dim=3, engine="fake",
                              device="cpu")
        self.delay_s = delay_s
        self.batches: list[list[tuple[int, int]]] = []  # (uid, length) of each input, per batch
        self.kinds: list[str] = []
        self.busy = threading.Event()  # set while a batch is inside the engine
        self.release = threading.Event()  # cleared: the next batch waits for it (engine held busy)
        self.release.set()
        self.poison: set[int] = set()  # a batch holding one of these uids raises

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        return self._forward("embed", batch)

    def score(self, batch: list[Tokens]) -> np.ndarray:
        return self._forward("score", batch)[:, 0]

    def _forward(self, kind: str, batch: list[Tokens]) -> np.ndarray:
        seen = [(t.ids[0], len(t)) for t in batch]
        self.batches.append(seen)
        self.kinds.append(kind)
        self.busy.set()
        try:
            assert self.release.wait(WAIT_S)
            time.sleep(self.delay_s)
            if self.poison & {uid for uid, _ in seen}:
                raise RuntimeError("poisoned batch")
            number = len(self.batches)
            return np.array([[uid, length, number] for uid, length in seen], np.float32)
        finally:
            self.busy.clear()

    def seen_uids(self) -> set[int]:
        return {uid for batch in self.batches for uid, _ in batch}


_uids = itertools.count(1)


def make_inputs(lengths: list[int]) -> list[Tokens]:
    """Inputs with fresh unique ids: ``Tokens([uid] * length)``."""
    return [Tokens([next(_uids)] * length) for length in lengths]


def uids(inputs: list[Tokens]) -> list[int]:
    return [t.ids[0] for t in inputs]


def assert_drained(runner: Runner) -> None:
    assert runner.queued_items == 0
    assert runner.queued_tokens == 0
    assert runner.alive


async def hold_engine(runner: Runner, engine: FakeEngine) -> asyncio.Task:
    """Occupy the engine with a one-input request until ``engine.release`` is set."""
    engine.release.clear()
    task = asyncio.create_task(runner.run("embed", make_inputs([1])))
    assert await asyncio.to_thread(engine.busy.wait, WAIT_S)
    return task


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def runner(engine: FakeEngine):
    runner = Runner(engine, batch_tokens=256, max_queue_tokens=100_000)
    yield runner
    engine.release.set()
    runner.stop()


def test_each_request_gets_its_own_rows_in_order_under_concurrency(runner, engine) -> None:
    engine.delay_s = 0.002
    rng = random.Random(7)
    requests = [make_inputs([rng.randint(1, 60) for _ in range(rng.randint(1, 12))]) for _ in range(60)]

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(runner.run("embed", inputs) for inputs in requests))

    results = asyncio.run(main())
    for inputs, rows in zip(requests, results, strict=True):
        assert rows.shape == (len(inputs), 3) and rows.dtype == np.float32
        assert rows[:, 0].tolist() == uids(inputs)
        assert rows[:, 1].tolist() == [len(t) for t in inputs]
    owner = {uid: n for n, inputs in enumerate(requests) for uid in uids(inputs)}
    mixed = [batch for batch in engine.batches if len({owner[uid] for uid, _ in batch}) > 1]
    assert mixed, "no batch held inputs of several requests"
    assert sum(len(b) for b in engine.batches) == sum(len(r) for r in requests)  # each input ran once
    assert_drained(runner)


def test_batches_respect_the_padded_token_budget(runner: Runner, engine: FakeEngine) -> None:
    rng = random.Random(3)
    lengths = [rng.randint(1, 90) for _ in range(200)] + [300]  # 300 > the budget: a batch of its own

    async def main() -> None:
        held = await hold_engine(runner, engine)  # everything below queues up behind it
        tasks = [asyncio.create_task(runner.run("embed", make_inputs(lengths[i::20]))) for i in range(20)]
        await asyncio.sleep(0.05)
        engine.release.set()
        await asyncio.gather(held, *tasks)

    asyncio.run(main())
    assert len(engine.batches) >= 3
    for batch in engine.batches:
        longest = max(length for _, length in batch)
        assert longest * len(batch) <= runner.batch_tokens or len(batch) == 1
    assert [(300,)] == [tuple(length for _, length in b) for b in engine.batches if b[0][1] == 300]
    assert_drained(runner)


def test_cancelled_and_timed_out_requests_never_reach_the_engine(runner: Runner, engine: FakeEngine) -> None:
    cancelled, timed_out, kept = make_inputs([5] * 30), make_inputs([7] * 10), make_inputs([3] * 4)

    async def main() -> np.ndarray:
        held = await hold_engine(runner, engine)
        doomed = asyncio.create_task(runner.run("embed", cancelled))
        # the request's deadline, as service.admitted sets it (asyncio.timeout around the runner call)
        waiting = asyncio.create_task(run_with_deadline(runner.run("embed", timed_out), 0.05))
        survivor = asyncio.create_task(runner.run("embed", kept))
        await asyncio.sleep(0.01)
        assert runner.queued_items == 44
        doomed.cancel()
        with pytest.raises(TimeoutError):
            await waiting
        assert runner.queued_items == 4 and runner.queued_tokens == 12  # released at once, engine still busy
        engine.release.set()
        await held
        return await survivor

    rows = asyncio.run(main())
    assert rows[:, 0].tolist() == uids(kept)
    assert engine.seen_uids().isdisjoint(uids(cancelled) + uids(timed_out))
    assert runner.stats.dropped_items == 40
    assert_drained(runner)


async def run_with_deadline(awaitable, seconds: float):
    async with asyncio.timeout(seconds):
        return await awaitable


def test_engine_error_fails_every_waiter_of_that_batch_only(runner: Runner, engine: FakeEngine) -> None:
    first, second, other_batch = make_inputs([2, 2]), make_inputs([2]), make_inputs([200])
    engine.poison = {uids(second)[0]}

    async def main() -> list:
        held = await hold_engine(runner, engine)
        tasks = [asyncio.create_task(runner.run("embed", inputs)) for inputs in (first, second, other_batch)]
        await asyncio.sleep(0.01)
        engine.release.set()  # [2, 2, 2] form one batch within 256 tokens; 200 * 4 does not fit
        await held
        return await asyncio.gather(*tasks, return_exceptions=True)

    failed_first, failed_second, fine = asyncio.run(main())
    assert isinstance(failed_first, EngineFailure) and isinstance(failed_second, EngineFailure)
    assert failed_first.status == 500
    assert fine[:, 0].tolist() == uids(other_batch)
    assert runner.stats.failing is False  # the batch after the failure succeeded and cleared it

    async def fail_then_recover() -> np.ndarray:
        with pytest.raises(EngineFailure):
            await runner.run("embed", make_inputs([4]) + [Tokens([next(iter(engine.poison))])])
        assert runner.stats.failing and "poisoned batch" in runner.stats.last_error
        return await runner.run("embed", make_inputs([3]))  # the thread lives on

    assert asyncio.run(fail_then_recover()).shape == (1, 3)
    assert runner.stats.failing is False and runner.stats.last_error is None
    assert_drained(runner)


def test_a_failed_request_drops_its_inputs_still_queued(engine: FakeEngine) -> None:
    runner = Runner(engine, batch_tokens=8)  # two inputs of 4 tokens per batch
    inputs = make_inputs([4] * 10)
    engine.poison = {uids(inputs)[0]}

    async def main() -> None:
        with pytest.raises(EngineFailure):
            await runner.run("embed", inputs)

    asyncio.run(main())
    time.sleep(0.05)  # let the runner purge the rest
    assert len(engine.batches) == 1 and runner.stats.dropped_items == 8
    assert_drained(runner)
    runner.stop()


def test_full_queue_answers_overloaded_with_retry_after(engine: FakeEngine) -> None:
    runner = Runner(engine, batch_tokens=256, max_queue_tokens=20)

    async def main() -> None:
        held = await hold_engine(runner, engine)
        queued = asyncio.create_task(runner.run("embed", make_inputs([15])))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as refused:
            await runner.run("embed", make_inputs([6]))
        assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
        assert runner.queued_tokens == 15  # the refused request left nothing behind
        fits = asyncio.create_task(runner.run("embed", make_inputs([5])))
        engine.release.set()
        await asyncio.gather(held, queued, fits)
        huge = await runner.run("embed", make_inputs([50]))  # bigger than the queue, admitted when empty
        assert huge.shape == (1, 3)

    asyncio.run(main())
    assert_drained(runner)
    runner.stop()


def test_embed_and_score_inputs_never_share_a_batch(runner: Runner, engine: FakeEngine) -> None:
    async def main() -> tuple:
        held = await hold_engine(runner, engine)
        embeds = [asyncio.create_task(runner.run("embed", make_inputs([3, 4]))) for _ in range(3)]
        scores = [asyncio.create_task(runner.run("score", make_inputs([3, 5]))) for _ in range(3)]
        await asyncio.sleep(0.01)
        engine.release.set()
        await held
        return await asyncio.gather(*embeds), await asyncio.gather(*scores)

    embeds, scores = asyncio.run(main())
    assert all(rows.shape == (2, 3) for rows in embeds) and all(rows.shape == (2,) for rows in scores)
    assert engine.kinds[1:] == ["embed", "score"]  # one batch each, the oldest kind first
    assert_drained(runner)


def test_stopped_runner_refuses_new_work_and_its_thread_exits(engine: FakeEngine) -> None:
    runner = Runner(engine)
    runner.stop()
    runner.join(WAIT_S)
    assert not runner.alive
    with pytest.raises(NotReady):
        asyncio.run(runner.run("embed", make_inputs([3])))


def test_engine_returning_too_few_rows_fails_the_batch_instead_of_hanging(engine: FakeEngine) -> None:
    runner = Runner(engine)
    engine.embed = lambda batch: np.zeros((len(batch) - 1, 3), np.float32)

    async def main() -> None:
        with pytest.raises(EngineFailure):
            await asyncio.wait_for(runner.run("embed", make_inputs([2, 3])), WAIT_S)

    asyncio.run(main())
    assert runner.stats.failing and "rows" in runner.stats.last_error
    assert_drained(runner)
    runner.stop()


def test_deep_queue_cuts_batches_quickly_and_oldest_first() -> None:
    rng = random.Random(5)
    queue, job = PendingQueue(), SimpleNamespace(done=False)
    shared = {length: Tokens([0] * length) for length in range(1, 257)}  # ids do not matter here
    lengths = [rng.randint(1, 256) for _ in range(50_000)]  # 6.4M tokens: past the default queue limit
    items = [Item(job, i, shared[n], item_key(n, i)) for i, n in enumerate(lengths)]
    queue.add(items)
    start = time.perf_counter()
    first = queue.take_batch(16384)
    taken = [first] + [queue.take_batch(16384) for _ in range(99)]
    assert time.perf_counter() - start < 2.0  # a Python-level re-sort per batch would take far longer
    assert items[0] in first
    for batch in taken:
        assert max(len(i.tokens) for i in batch) * len(batch) <= 16384
    assert len(queue) == len(items) - sum(map(len, taken))


def test_two_lanes_run_batches_side_by_side_and_a_lone_batch_takes_every_core(engine: FakeEngine) -> None:
    inside, most_inside, lock = [0], [0], threading.Lock()
    forward = engine._forward

    def counting_forward(kind: str, batch: list[Tokens]) -> np.ndarray:
        with lock:
            inside[0] += 1
            most_inside[0] = max(most_inside[0], inside[0])
        try:
            return forward(kind, batch)
        finally:
            with lock:
                inside[0] -= 1

    engine._forward = counting_forward
    engine.lanes, shares, padded = 2, [], []
    engine.share_cores = lambda lanes, padded_tokens: (shares.append(lanes), padded.append(padded_tokens))
    runner = Runner(engine, batch_tokens=4)  # every 4-token input is a batch of its own

    async def scenario() -> None:
        engine.release.clear()
        inputs = make_inputs([4, 4, 4])
        task = asyncio.create_task(runner.run("embed", inputs))
        deadline = time.monotonic() + WAIT_S
        while most_inside[0] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert most_inside[0] == 2, "the second lane never started while the first was busy"
        engine.release.set()
        rows = await asyncio.wait_for(task, WAIT_S)
        assert rows[:, 0].tolist() == uids(inputs)
        assert shares[:2] == [2, 2]  # work was waiting: each lane ran on half the cores
        shares.clear()
        await runner.run("embed", make_inputs([4]))
        assert shares == [1]  # alone with an empty queue: the lane takes every core
        assert padded[-1] == 4  # and the engine learns the pass's size (one row of 4 tokens)

    asyncio.run(scenario())
    assert_drained(runner)
    runner.stop()
    runner.join(WAIT_S)
    assert not runner.alive


def test_a_lone_batch_shares_the_cores_while_other_requests_are_on_their_way(engine: FakeEngine) -> None:
    """A queue emptied by the take is not enough: requests still being parsed or tokenized (the server's
    in-flight count) will reach the other lane, so this pass keeps to its share of the cores."""
    engine.lanes, shares, in_flight = 2, [], [1]
    engine.share_cores = lambda lanes, padded_tokens: shares.append(lanes)
    runner = Runner(engine, batch_tokens=64, in_flight=lambda: in_flight[0])

    async def scenario() -> None:
        await runner.run("embed", make_inputs([4, 4]))  # one request of two texts: nothing else in flight
        assert shares == [1]
        in_flight[0], shares[:] = 5, []  # four more requests admitted, not queued yet
        await runner.run("embed", make_inputs([4]))
        assert shares == [2]

    asyncio.run(scenario())
    runner.stop()
    runner.join(WAIT_S)


def test_a_queue_slower_to_drain_than_max_queue_wait_s_answers_overloaded() -> None:
    engine = FakeEngine(delay_s=0.05)  # 64 tokens in >= 50 ms: at most 1280 tokens/s once measured
    runner = Runner(engine, batch_tokens=256, max_queue_tokens=100_000, max_queue_wait_s=0.1)

    async def main() -> None:
        await runner.run("embed", make_inputs([64]))  # a quarter of the budget: measures the speed
        held = await hold_engine(runner, engine)
        queued = asyncio.create_task(runner.run("embed", make_inputs([60])))  # an empty queue admits it
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as refused:  # >= 0.2 s with these: over the 0.1 s bound
            await runner.run("embed", make_inputs([200]))
        assert refused.value.status == 429 and runner.queued_tokens == 60
        engine.release.set()
        await asyncio.gather(held, queued)

    asyncio.run(main())
    assert_drained(runner)
    runner.stop()


def test_a_tiny_warm_up_batch_does_not_make_the_first_burst_look_slow() -> None:
    # 2 tokens in >= 50 ms "measure" <= 40 tokens/s: at that speed the burst below would take 6 s to
    # drain and be refused; such batches are all overhead, so they do not count (BatchStats)
    engine = FakeEngine(delay_s=0.05)
    runner = Runner(engine, batch_tokens=256, max_queue_tokens=100_000, max_queue_wait_s=0.1)

    async def main() -> None:
        await runner.run("embed", make_inputs([2]))  # the warm-up pass
        assert runner.stats.tokens_per_s is None
        held = await hold_engine(runner, engine)
        first = asyncio.create_task(runner.run("embed", make_inputs([60])))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(runner.run("embed", make_inputs([200])))  # admitted: speed unknown
        await asyncio.sleep(0.01)
        assert runner.queued_tokens == 260
        engine.release.set()
        await asyncio.gather(held, first, second)
        assert runner.stats.tokens_per_s is not None  # the 200-token batch measured it

    asyncio.run(main())
    assert_drained(runner)
    runner.stop()
