"""The batch worker and its store on their failure paths (a fake dispatch stands in for the routes; the
real routes are in ``compat_tests/test_openai_batch*.py``): unreadable input, a failing disk, cancel,
retries, a restart, and the store's exactly-once rule."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from gateway.protocol import openai_batch
from gateway.serving.jobs.store import BatchRow, Result, Store, new_id
from gateway.serving.jobs.worker import Answer, BatchWorker

WAIT_S = 20


def input_file(store: Store, count: int) -> str:
    file_id = new_id("file-")
    lines = [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/embeddings", "body": {"input": f"t{i}"}}
        for i in range(count)
    ]
    store.temp_path(file_id).write_text("".join(json.dumps(line) + "\n" for line in lines))
    store.add_file(file_id, None, "batch", "in.jsonl")
    return file_id


def new_batch(store: Store, file_id: str) -> str:
    row = BatchRow(
        new_id("batch_"),
        None,
        "/v1/embeddings",
        file_id,
        "24h",
        "validating",
        int(time.time()),
        expires_at=int(time.time()) + 3600,
    )
    store.add_batch(row)
    return row.id


async def echo(path: str, body: bytes, owner: str | None) -> Answer:
    return Answer(200, "req", body)


async def until(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def finished(store: Store, batch_id: str):
    return lambda: store.get_batch(batch_id).status in ("completed", "failed", "cancelled", "expired")


def lines_of(store: Store, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in store.file_path(file_id).read_text().splitlines()]


async def run(store: Store, batch_id: str, dispatch=echo, **kwargs) -> BatchRow:
    worker = BatchWorker(store, dispatch, file_format=openai_batch, max_lines=1000, **kwargs)
    worker.start()
    try:
        await until(finished(store, batch_id))
    finally:
        await worker.stop()
    return store.get_batch(batch_id)


def test_every_line_answered_once_in_input_order(tmp_path) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 50))
    row = asyncio.run(run(store, batch_id, window=7, chunk=5))
    assert (row.status, row.total, row.completed, row.failed) == ("completed", 50, 50, 0)
    out = lines_of(store, row.output_file_id)
    assert [line["custom_id"] for line in out] == [f"c{i}" for i in range(50)]
    assert out[3]["response"]["body"] == {"input": "t3"} and row.error_file_id is None


def test_a_restart_runs_only_the_lines_not_committed(tmp_path) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 10))
    store.update_batch(batch_id, status="in_progress", total=10)
    store.append_results(batch_id, [Result(i, 200, "before", b'{"done":"before"}') for i in range(4)])
    sent = []

    async def counting(path: str, body: bytes, owner: str | None) -> Answer:
        sent.append(json.loads(body)["input"])
        return await echo(path, body, owner)

    row = asyncio.run(run(store, batch_id, counting))
    assert sorted(sent) == sorted(f"t{i}" for i in range(4, 10))
    assert [line["custom_id"] for line in lines_of(store, row.output_file_id)] == [f"c{i}" for i in range(10)]


def test_the_store_refuses_a_line_twice_and_keeps_the_counts(tmp_path) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 3))
    store.append_results(batch_id, [Result(0, 200, "r", b"{}")])
    with pytest.raises(sqlite3.IntegrityError):
        store.append_results(batch_id, [Result(1, 200, "r", b"{}"), Result(0, 200, "r", b"{}")])
    assert store.done_lines(batch_id) == {0} and store.get_batch(batch_id).completed == 1


def test_an_unreadable_input_file_fails_the_batch(tmp_path) -> None:
    store = Store(tmp_path)
    file_id = input_file(store, 3)
    batch_id = new_batch(store, file_id)
    store.file_path(file_id).unlink()
    row = asyncio.run(run(store, batch_id))
    assert row.status == "failed"
    assert json.loads(row.errors)[0]["code"] == "input_file_unreadable"


def test_a_failing_disk_fails_the_batch_and_lists_no_output(tmp_path, monkeypatch) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 3))
    monkeypatch.setattr(store, "temp_path", lambda file_id: tmp_path / "missing-dir" / file_id)
    row = asyncio.run(run(store, batch_id))
    assert row.status == "failed" and row.output_file_id is None
    assert json.loads(row.errors)[0]["code"] == "output_write_failed"
    assert store.list_files(None, "batch_output") == []


def test_429_and_503_answers_are_retried(tmp_path) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 2))
    refusals = {"t0": 2, "t1": 1}

    async def busy(path: str, body: bytes, owner: str | None) -> Answer:
        text = json.loads(body)["input"]
        if refusals[text]:
            refusals[text] -= 1
            return Answer(429 if text == "t0" else 503, "r", b'{"error":{}}', retry_after_s=0.01)
        return await echo(path, body, owner)

    row = asyncio.run(run(store, batch_id, busy))
    assert (row.status, row.completed, row.failed) == ("completed", 2, 0)


def test_cancel_keeps_the_answered_lines_and_lists_the_rest_as_cancelled(tmp_path) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 20))
    gate = asyncio.Event()

    async def slow_after_five(path: str, body: bytes, owner: str | None) -> Answer:
        if int(json.loads(body)["input"][1:]) >= 5:
            await gate.wait()  # never set: these lines are in flight at the cancel
        return await echo(path, body, owner)

    async def scenario() -> BatchRow:
        worker = BatchWorker(
            store, slow_after_five, file_format=openai_batch, max_lines=1000, window=8, chunk=1
        )
        worker.start()
        try:
            await until(lambda: store.get_batch(batch_id).completed == 5)
            assert store.update_batch(batch_id, only_if=("in_progress",), status="cancelling")
            worker.cancel(batch_id)
            await until(finished(store, batch_id))
        finally:
            await worker.stop()
        return store.get_batch(batch_id)

    row = asyncio.run(scenario())
    assert row.status == "cancelled" and row.cancelling_at and row.cancelled_at
    done = [line["custom_id"] for line in lines_of(store, row.output_file_id)]
    cancelled = lines_of(store, row.error_file_id)
    assert done == [f"c{i}" for i in range(5)]
    assert [line["custom_id"] for line in cancelled] == [f"c{i}" for i in range(5, 20)]
    assert {line["error"]["code"] for line in cancelled} == {"batch_cancelled"}


def test_a_second_process_on_the_same_data_dir_leaves_the_batches_to_the_first(tmp_path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path)
        first = BatchWorker(store, echo, file_format=openai_batch, max_lines=10)
        second = BatchWorker(Store(tmp_path), echo, file_format=openai_batch, max_lines=10)
        first.start()
        second.start()
        try:
            assert first._task is not None and second._task is None
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())


def test_a_batch_past_its_window_expires_with_its_lines_in_the_error_file(tmp_path) -> None:
    store = Store(tmp_path)
    batch_id = new_batch(store, input_file(store, 3))
    store.update_batch(batch_id, expires_at=int(time.time()) - 1)
    row = asyncio.run(run(store, batch_id))
    assert row.status == "expired" and row.expired_at and row.output_file_id is None
    errors = lines_of(store, row.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        (f"c{i}", "batch_expired") for i in range(3)
    ]
