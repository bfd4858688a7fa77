"""``BatchWorker``: runs OpenAI batches, one at a time, oldest first, each line answered by the online route.

A batch moves ``validating`` -> ``in_progress`` -> ``finalizing`` -> ``completed`` (or ``failed``,
``cancelling`` -> ``cancelled``, ``expired``). Its lines go to ``dispatch`` (the HTTP layer's in-process
call of the route, so each answer is byte for byte what the route returns) with up to ``window`` lines in
flight; the runner batches them with each other and with online requests, and runs them after every
interactive request (``Job.priority``). Answers are committed to the store in chunks
(``Store.append_results``); after a crash the worker starts again from the lines not committed, so every
line is answered once. The output and error files are written whole under temporary names and renamed,
then listed: a file that is listed is complete. A failure of the store or the disk (full, unreadable
input) fails the batch with the error in ``errors``.

A line answered 429 (the model's queue is full, or the key's token quota) or 503 (the model is loading or
the server stopping) is retried after the answer's ``Retry-After``; any other answer is final.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType

from gateway.serving.jobs.store import BatchRow, Result, Store

log = logging.getLogger(__name__)
RETRY_STATUSES = (429, 503)
MAX_RETRY_WAIT_S = 10.0
FLUSH_EVERY_S = 1.0  # commit answers at least this often while lines complete
WINDOW_TIMEOUT_S = 0.5  # how often the loop looks for cancellation when nothing completes


@dataclass
class Answer:
    """What the route answered one line: its status, ``X-Request-ID``, JSON body and ``Retry-After``."""

    status_code: int
    request_id: str
    body: bytes
    retry_after_s: float | None = None


# (endpoint path, JSON body, owner's API key label) -> the route's answer
Dispatch = Callable[[str, bytes, "str | None"], Awaitable[Answer]]


class BatchWorker:
    """Runs the batches of a ``Store`` (see the module docstring).

    Args:
        store: the durable state.
        dispatch: answers one line as the online route does.
        max_lines: most requests in one input file (``batch_max_lines``).
        window: lines in flight at once: enough to fill the runner's batches, few enough that a cancel
            or an online request finds a short queue.
        chunk: answers committed per transaction.
        file_format: the module that parses input files and writes output lines
            (``gateway.protocol.openai_batch``, passed in: serving never imports a wire format).
    """

    def __init__(self, store: Store, dispatch: Dispatch, *, file_format: ModuleType, max_lines: int,
                 window: int = 256, chunk: int = 256) -> None:
        self.store, self.dispatch, self.fmt, self.max_lines = store, dispatch, file_format, max_lines
        self.window, self.chunk = window, chunk
        self._wake = asyncio.Event()
        self._cancelled: set[str] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the loop on the running event loop: first the batches a previous process left active.

        Only one process works on a data directory (an exclusive lock on ``worker.lock``, released by the
        system even on ``kill -9``); another one serving the same directory answers the API but leaves the
        batches to the first.
        """
        if not self._lock_data_dir():
            log.warning(
                "another gateway process runs the batches of %s: this one only serves their API",
                self.store.data_dir,
            )
            return
        self._task = asyncio.create_task(self._loop(), name="batch-worker")

    def _lock_data_dir(self) -> bool:
        import fcntl

        self._lock_file = open(self.store.data_dir / "worker.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            return False
        return True

    async def stop(self) -> None:
        """Stop at once (server shutdown): lines in flight are dropped, and run again after a restart."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._lock_file.close()

    def wake(self) -> None:
        """A batch was created: look for work."""
        self._wake.set()

    def cancel(self, batch_id: str) -> None:
        """Its status is ``cancelling`` now: stop sending its lines and finalize what is answered."""
        self._cancelled.add(batch_id)
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            rows = await asyncio.to_thread(self.store.active_batches)
            for row in rows:
                await self._run_safely(row)
            if not rows:
                await self._wake.wait()

    async def _run_safely(self, row: BatchRow) -> None:
        try:
            await self._run(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a store or disk failure fails this batch, not the worker
            log.exception("batch %s failed", row.id)
            await self._fail(row, "batch_failed", f"The batch failed: {type(exc).__name__}: {exc}")

    async def _fail(self, row: BatchRow, code: str, message: str, line: int | None = None) -> None:
        errors = [{"code": code, "message": message, "param": None, "line": line}]
        try:
            await asyncio.to_thread(
                self.store.update_batch, row.id, status="failed", errors=json.dumps(errors)
            )
        except Exception:  # noqa: BLE001 - the store itself is broken: stay active, try after a restart
            log.exception("could not mark batch %s as failed", row.id)
            await asyncio.sleep(5)

    async def _run(self, row: BatchRow) -> None:
        try:
            data = await asyncio.to_thread(self.store.file_path(row.input_file_id).read_bytes)
        except OSError as exc:
            await self._fail(
                row,
                "input_file_unreadable",
                f"The input file {row.input_file_id} could not be read: {exc.strerror or exc}.",
            )
            return
        requests, errors = await asyncio.to_thread(
            self.fmt.parse_input, data, row.endpoint, self.max_lines
        )
        del data
        if errors:
            await asyncio.to_thread(
                self.store.update_batch,
                row.id,
                status="failed",
                errors=json.dumps(
                    [{"code": e.code, "message": e.message, "param": e.param, "line": e.line} for e in errors]
                ),
            )
            return
        if row.status == "validating":
            await asyncio.to_thread(
                self.store.update_batch,
                row.id,
                only_if=("validating",),
                status="in_progress",
                total=len(requests),
            )
            row.status = "in_progress"
        if row.status == "in_progress":
            await self._answer_all(row, requests)
        await self._finalize(row.id, requests)

    async def _answer_all(self, row: BatchRow, requests: list[tuple[str, bytes]]) -> None:
        """Send every line not answered yet; commit answers in chunks; stop early on cancel or expiry."""
        done = await asyncio.to_thread(self.store.done_lines, row.id)
        todo = (i for i in range(len(requests)) if i not in done)
        in_flight: set[asyncio.Task] = set()
        buffer: list[Result] = []
        flushed = time.monotonic()
        try:
            while True:
                stopping = row.id in self._cancelled or (
                    row.expires_at is not None and time.time() > row.expires_at
                )
                while (
                    not stopping and len(in_flight) < self.window and (line := next(todo, None)) is not None
                ):
                    in_flight.add(asyncio.create_task(self._answer(row, line, requests[line][1])))
                if not in_flight:
                    break
                finished, in_flight = await asyncio.wait(
                    in_flight, timeout=WINDOW_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
                )
                buffer += [task.result() for task in finished]
                if len(buffer) >= self.chunk or (buffer and time.monotonic() - flushed > FLUSH_EVERY_S):
                    await asyncio.to_thread(self.store.append_results, row.id, buffer)
                    buffer, flushed = [], time.monotonic()
                if stopping:  # a cancel: what is in flight is dropped, what is answered is kept
                    for task in in_flight:
                        task.cancel()
                    await asyncio.gather(*in_flight, return_exceptions=True)
                    in_flight = set()
            if buffer:
                await asyncio.to_thread(self.store.append_results, row.id, buffer)
        finally:
            for task in in_flight:
                task.cancel()

    async def _answer(self, row: BatchRow, line: int, body: bytes) -> Result:
        """One line's final answer (429 and 503 are retried after their Retry-After)."""
        wait = 0.1
        while True:
            answer = await self.dispatch(row.endpoint, body, row.owner)
            if answer.status_code not in RETRY_STATUSES:
                return Result(line, answer.status_code, answer.request_id, answer.body)
            await asyncio.sleep(min(MAX_RETRY_WAIT_S, answer.retry_after_s or wait))
            wait = min(MAX_RETRY_WAIT_S, wait * 2)

    async def _finalize(self, batch_id: str, requests: list[tuple[str, bytes]]) -> None:
        row = await asyncio.to_thread(self.store.get_batch, batch_id, any_owner=True)
        if row is None or row.status in ("failed", "completed", "cancelled"):
            return
        # lines left unanswered without a cancel: the window passed (``_answer_all`` stopped early)
        unfinished = row.completed + row.failed < row.total
        final = "cancelled" if row.status == "cancelling" else "expired" if unfinished else "completed"
        if row.status == "in_progress":
            await asyncio.to_thread(self.store.update_batch, batch_id, status="finalizing")
        try:
            files = await asyncio.to_thread(self._write_outputs, row, requests, final)
        except OSError as exc:  # disk full, permissions: no output is listed, the batch fails
            await self._fail(
                row, "output_write_failed", f"Writing the output files failed: {exc.strerror or exc}."
            )
            return
        await asyncio.to_thread(self.store.update_batch, batch_id, status=final, **files)
        await asyncio.to_thread(self.store.drop_results, batch_id)
        self._cancelled.discard(batch_id)
        log.info("batch %s %s", batch_id, final)

    def _write_outputs(self, row: BatchRow, requests: list[tuple[str, bytes]], final: str) -> dict[str, str]:
        """Write the output file (2xx answers) and the error file (the others, and lines left unanswered by
        a cancel or expiry), in line order; list each that holds a line. Returns their ids by field."""
        suffix = row.id.removeprefix("batch_")
        ids = {"output_file_id": f"file-{suffix}-output", "error_file_id": f"file-{suffix}-errors"}
        paths = {field: self.store.temp_path(file_id) for field, file_id in ids.items()}
        counts = dict.fromkeys(ids, 0)
        try:
            with open(paths["output_file_id"], "wb") as out, open(paths["error_file_id"], "wb") as err:
                answered = self._copy_results(row, requests, out, err, counts)
                self._write_unanswered(row, requests, answered, err, counts, final)
                for handle in (out, err):
                    handle.flush()
                    os.fsync(handle.fileno())
            listed = {}
            for field, file_id in ids.items():
                if counts[field]:
                    self.store.add_file(file_id, row.owner, "batch_output", f"{row.id}_{field[:-8]}.jsonl")
                    listed[field] = file_id
            return listed
        finally:
            for path in paths.values():
                path.unlink(missing_ok=True)

    def _copy_results(self, row, requests, out, err, counts) -> set[int]:
        answered = set()
        for result in self.store.results(row.id):
            ok = 200 <= result.status_code < 300
            custom_id = requests[result.line][0]
            (out if ok else err).write(
                self.fmt.output_line(
                    result.line_id, custom_id, result.status_code, result.request_id, result.body
                )
            )
            counts["output_file_id" if ok else "error_file_id"] += 1
            answered.add(result.line)
        return answered

    def _write_unanswered(self, row, requests, answered, err, counts, final) -> None:
        if final == "completed":
            return
        code = "batch_cancelled" if final == "cancelled" else "batch_expired"
        message = (
            "The batch was cancelled before this request ran."
            if final == "cancelled"
            else "The batch expired before this request ran."
        )
        for line, (custom_id, _) in enumerate(requests):
            if line not in answered:
                err.write(
                    self.fmt.failed_line(
                        f"batch_req_{row.id.removeprefix('batch_')}_{line}", custom_id, code, message
                    )
                )
                counts["error_file_id"] += 1
