"""Batch jobs' work yields to interactive requests in the runner (``Job.priority``): a batch line's
inputs run only when no interactive input waits, and never ride in the small requests' batches."""

from __future__ import annotations

import asyncio

from gateway.serving import request_context
from gateway.serving.request_context import BatchCaller
from gateway.serving.runner import Runner
from tests.test_batching import WAIT_S, FakeEngine, hold_engine, make_inputs


async def run_as_batch_line(runner: Runner, inputs) -> object:
    """``runner.run`` inside a batch line's request context (as ``gateway.http.inprocess`` opens it)."""
    request_context.start("batch-line", BatchCaller(owner=None))
    return await runner.run("embed", inputs)


async def queued(runner: Runner, items: int) -> None:
    """Wait until ``items`` inputs are queued (the tasks have run up to their ``await``)."""
    while runner.queued_items < items:
        await asyncio.sleep(0)


def uids(inputs) -> set[int]:
    return {t.ids[0] for t in inputs}


def test_an_interactive_request_runs_before_a_batch_line_holding_fewer_tokens() -> None:
    async def scenario() -> None:
        engine = FakeEngine()
        runner = Runner(engine, batch_tokens=40, max_queue_tokens=100_000)
        try:
            blocker = await hold_engine(runner, engine)
            background = make_inputs([30])  # fewer tokens queued: shortest-first alone would run it first
            interactive = make_inputs([20, 20])
            batch_task = asyncio.create_task(run_as_batch_line(runner, background))
            await queued(runner, 1)
            online_task = asyncio.create_task(runner.run("embed", interactive))
            await queued(runner, 3)
            engine.release.set()
            await asyncio.wait_for(asyncio.gather(blocker, batch_task, online_task), WAIT_S)
            order = [{uid for uid, _ in batch} for batch in engine.batches[1:]]
            assert order == [uids(interactive), uids(background)]
        finally:
            engine.release.set()
            runner.stop()

    asyncio.run(scenario())


def test_batch_lines_never_join_the_small_requests_batch() -> None:
    async def scenario() -> None:
        engine = FakeEngine()
        runner = Runner(engine, batch_tokens=64, max_queue_tokens=100_000)  # small: <= 8 tokens queued
        try:
            blocker = await hold_engine(runner, engine)
            background = make_inputs([2, 2])
            interactive = make_inputs([3])
            batch_task = asyncio.create_task(run_as_batch_line(runner, background))
            await queued(runner, 2)
            online_task = asyncio.create_task(runner.run("embed", interactive))
            await queued(runner, 3)
            engine.release.set()
            await asyncio.wait_for(asyncio.gather(blocker, batch_task, online_task), WAIT_S)
            assert {uid for uid, _ in engine.batches[1]} == uids(interactive)
            assert {uid for batch in engine.batches[2:] for uid, _ in batch} == uids(background)
        finally:
            engine.release.set()
            runner.stop()

    asyncio.run(scenario())


def test_a_batch_line_runs_at_once_on_an_idle_model() -> None:
    """Yielding costs nothing when nobody else waits: the batch work uses the idle capacity."""

    async def scenario() -> None:
        engine = FakeEngine()
        runner = Runner(engine, batch_tokens=64, max_queue_tokens=100_000)
        try:
            rows = await asyncio.wait_for(run_as_batch_line(runner, make_inputs([4, 5])), WAIT_S)
            assert rows.shape == (2, 3)
        finally:
            runner.stop()

    asyncio.run(scenario())


def test_while_queries_come_batch_work_leaves_one_lane_free_for_them() -> None:
    """Two lanes, a query seen just now, two bulk batches of a batch job queued: one runs, the other
    waits, and the next query runs at once on the free lane (not after a bulk forward pass)."""

    async def scenario() -> None:
        engine = FakeEngine()
        engine.lanes = 2
        runner = Runner(engine, batch_tokens=64, max_queue_tokens=100_000)
        try:
            await asyncio.wait_for(runner.run("embed", make_inputs([3])), WAIT_S)  # a query: the window opens
            engine.release.clear()  # hold every forward pass from now on
            background = make_inputs([60, 60])  # two batches: 60 x 2 > 64 padded tokens
            batch_task = asyncio.create_task(run_as_batch_line(runner, background))
            while len(engine.batches) < 2:  # the first bulk batch is inside the engine
                await asyncio.sleep(0)
            assert runner.queued_items == 1  # the second lane keeps off the other bulk batch
            query = make_inputs([3])
            query_task = asyncio.create_task(runner.run("embed", query))
            while not any(uids(query) & {uid for uid, _ in batch} for batch in engine.batches):
                await asyncio.sleep(0)  # the query reached the engine while the bulk batch is still held
            engine.release.set()
            await asyncio.wait_for(asyncio.gather(batch_task, query_task), WAIT_S)
        finally:
            engine.release.set()
            runner.stop()

    asyncio.run(scenario())
