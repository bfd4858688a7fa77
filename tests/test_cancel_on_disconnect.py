"""``cancel_on_disconnect``: a client that leaves makes its request's queued inputs drop (499), the work's
own result or error comes back otherwise, and a cancel of the caller itself (server shutdown) stays a
cancel. The work runs in the caller's task, so the caller must come out of a disconnect uncancelled."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.errors import ClientDisconnected
from gateway.http.routes.common import cancel_on_disconnect
from gateway.serving.runner import Runner
from tests.test_batching import WAIT_S, FakeEngine, assert_drained, hold_engine, make_inputs


def connection() -> tuple[SimpleNamespace, asyncio.Event]:
    """A request whose ASGI ``receive`` reports ``http.disconnect`` once the returned event is set."""
    left = asyncio.Event()

    async def receive() -> dict:
        await left.wait()
        return {"type": "http.disconnect"}

    return SimpleNamespace(receive=receive), left


def test_the_work_result_comes_back_and_the_watcher_stops():
    async def main():
        request, _ = connection()
        before = set(asyncio.all_tasks())
        assert await cancel_on_disconnect(request, asyncio.sleep(0.01, result="done")) == "done"
        await asyncio.sleep(0)  # the watcher's cancellation lands
        assert set(asyncio.all_tasks()) == before  # no watcher left behind
        assert asyncio.current_task().cancelling() == 0

    asyncio.run(main())


def test_the_work_error_comes_back():
    async def failing():
        await asyncio.sleep(0)
        raise ValueError("bad input")

    async def main():
        request, _ = connection()
        with pytest.raises(ValueError, match="bad input"):
            await cancel_on_disconnect(request, failing())

    asyncio.run(main())


def test_a_client_leaving_cancels_the_work_and_the_caller_goes_on():
    async def main():
        request, left = connection()
        stopped = asyncio.Event()

        async def work():
            try:
                await asyncio.sleep(WAIT_S)
            except asyncio.CancelledError:
                stopped.set()
                raise

        asyncio.get_running_loop().call_later(0.01, left.set)
        with pytest.raises(ClientDisconnected):
            await cancel_on_disconnect(request, work())
        assert stopped.is_set()
        assert asyncio.current_task().cancelling() == 0  # the caller answers 499, not cancelled
        await asyncio.sleep(0)  # and can still await

    asyncio.run(main())


def test_a_cancelled_caller_stays_cancelled():
    async def main():
        request, _ = connection()
        caller = asyncio.create_task(cancel_on_disconnect(request, asyncio.sleep(WAIT_S)))
        await asyncio.sleep(0.01)
        caller.cancel()  # server shutdown, not the client
        with pytest.raises(asyncio.CancelledError):
            await caller

    asyncio.run(main())


def test_a_client_leaving_drops_its_queued_inputs_from_the_runner():
    engine = FakeEngine()
    runner = Runner(engine, batch_tokens=256, max_queue_tokens=100_000)
    try:
        async def main():
            held = await hold_engine(runner, engine)  # the engine is busy: the next inputs queue
            request, left = connection()
            gone = make_inputs([3, 3, 3])
            leaving = asyncio.create_task(cancel_on_disconnect(request, runner.run("embed", gone)))
            await asyncio.sleep(0.01)
            assert runner.queued_items == 3
            left.set()
            with pytest.raises(ClientDisconnected):
                await leaving
            assert runner.queued_items == 0  # dropped at once, while the engine is still busy
            engine.release.set()
            await held
            kept = make_inputs([2])
            rows = await cancel_on_disconnect(connection()[0], runner.run("embed", kept))
            return gone, kept, rows

        gone, kept, rows = asyncio.run(main())
        assert engine.seen_uids().isdisjoint(t.ids[0] for t in gone)
        np.testing.assert_array_equal(rows[:, 0], [kept[0].ids[0]])
        assert runner.stats.dropped_items == 3
        assert_drained(runner)
    finally:
        engine.release.set()
        runner.stop()
