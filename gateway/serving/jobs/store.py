"""Durable state of files and batches: one SQLite database (WAL mode) and the files' bytes, under
``data_dir``.

Layout: ``data_dir/gateway.sqlite3`` holds the ``files``, ``batches`` and ``results`` tables;
``data_dir/files/<file id>`` holds each file's bytes, written to a temporary name and renamed once
complete, so a file that is listed is always whole. A batch's answers are appended to ``results`` a chunk
at a time, each answer under the primary key ``(batch_id, line)`` and the batch's counts in the same
transaction: after a crash (``kill -9``) the answers committed are exactly the lines that will not run
again, and a line can never be stored twice. WAL with ``synchronous=NORMAL`` survives a process crash;
only a power loss may lose the last transactions (which are then simply run again).

Every method is blocking: the HTTP layer and the worker call them through ``asyncio.to_thread``. One
connection, shared under a lock (SQLite serialises writers anyway).

Errors: ``sqlite3.Error`` and ``OSError`` (disk full, unreadable file) propagate; the worker turns them
into a failed batch.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, owner TEXT, purpose TEXT NOT NULL, filename TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, owner TEXT, endpoint TEXT NOT NULL, input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
    in_progress_at INTEGER, expires_at INTEGER, finalizing_at INTEGER, completed_at INTEGER,
    failed_at INTEGER, expired_at INTEGER, cancelling_at INTEGER, cancelled_at INTEGER,
    output_file_id TEXT, error_file_id TEXT, errors TEXT, metadata TEXT,
    total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS results (
    batch_id TEXT NOT NULL, line INTEGER NOT NULL, line_id TEXT NOT NULL, status_code INTEGER NOT NULL,
    request_id TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (batch_id, line)) WITHOUT ROWID;
"""
# statuses whose batch still has work to do: the worker picks them up again after a restart
ACTIVE_STATUSES = ("validating", "in_progress", "finalizing", "cancelling")
TIME_FIELDS = (
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def default_data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/gateway`` (``~/.local/share/gateway``), or
    ``~/Library/Application Support/gateway`` on macOS."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "gateway"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "gateway"


def new_id(prefix: str) -> str:
    """An OpenAI-style id: ``file-`` / ``batch_`` / ``batch_req_`` and 24 random hex digits."""
    return prefix + secrets.token_hex(12)


@dataclass
class FileRow:
    id: str
    owner: str | None
    purpose: str
    filename: str
    bytes: int
    created_at: int


@dataclass
class BatchRow:
    id: str
    owner: str | None
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: str | None = None  # JSON list of OpenAI BatchError objects
    metadata: str | None = None  # JSON object
    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass
class Result:
    """One answered request line: ``line`` is its index among the file's requests (0-based)."""

    line: int
    status_code: int
    request_id: str
    body: bytes
    line_id: str = ""


class Store:
    """Files and batches under ``data_dir`` (created when missing).

    Raises:
        OSError / sqlite3.Error: the folder or database cannot be created or opened.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.data_dir / "gateway.sqlite3", check_same_thread=False, isolation_level=None
        )  # autocommit; transactions are explicit
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # files
    def file_path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    def temp_path(self, file_id: str) -> Path:
        """Where a file is written before it is complete (renamed to ``file_path`` then)."""
        return self.files_dir / f".{file_id}.partial"

    def add_file(self, file_id: str, owner: str | None, purpose: str, filename: str) -> FileRow:
        """Record a file whose bytes are complete at ``temp_path(file_id)``: rename it, then list it."""
        os.replace(self.temp_path(file_id), self.file_path(file_id))
        row = FileRow(
            file_id, owner, purpose, filename, self.file_path(file_id).stat().st_size, int(time.time())
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (row.id, row.owner, row.purpose, row.filename, row.bytes, row.created_at),
            )
        return row

    def get_file(self, file_id: str, owner: str | None) -> FileRow | None:
        with self._lock:
            found = self._db.execute(
                "SELECT * FROM files WHERE id = ? AND owner IS ?", (file_id, owner)
            ).fetchone()
        return FileRow(*found) if found else None

    def list_files(
        self, owner: str | None, purpose: str | None = None, limit: int = 10_000, after: str | None = None
    ) -> list[FileRow]:
        """Files of ``owner``, newest first, after the file ``after`` (cursor), at most ``limit``."""
        return [FileRow(*r) for r in self._page("files", owner, limit, after, ("purpose", purpose))]

    def delete_file(self, file_id: str, owner: str | None) -> bool:
        with self._lock:
            deleted = self._db.execute(
                "DELETE FROM files WHERE id = ? AND owner IS ?", (file_id, owner)
            ).rowcount
        if deleted:
            self.file_path(file_id).unlink(missing_ok=True)
        return bool(deleted)

    # batches
    def add_batch(self, row: BatchRow) -> None:
        names = list(BatchRow.__dataclass_fields__)
        with self._lock:
            self._db.execute(
                f"INSERT INTO batches ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [getattr(row, n) for n in names],
            )

    def get_batch(
        self, batch_id: str, owner: str | None = None, *, any_owner: bool = False
    ) -> BatchRow | None:
        query, args = "SELECT * FROM batches WHERE id = ?", [batch_id]
        if not any_owner:
            query, args = query + " AND owner IS ?", [batch_id, owner]
        with self._lock:
            found = self._db.execute(query, args).fetchone()
        return BatchRow(*found) if found else None

    def list_batches(self, owner: str | None, limit: int = 20, after: str | None = None) -> list[BatchRow]:
        return [BatchRow(*r) for r in self._page("batches", owner, limit, after)]

    def active_batches(self) -> list[BatchRow]:
        """Batches with work left (every owner), oldest first: what a restarted worker resumes."""
        marks = ", ".join("?" * len(ACTIVE_STATUSES))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM batches WHERE status IN ({marks}) ORDER BY created_at, rowid", ACTIVE_STATUSES
            ).fetchall()
        return [BatchRow(*r) for r in rows]

    def update_batch(self, batch_id: str, *, only_if: tuple[str, ...] = (), **fields: object) -> bool:
        """Set ``fields`` of a batch (a ``status`` also stamps its ``<status>_at`` when that is unset),
        when its status is one of ``only_if`` (empty: any). Returns whether it changed."""
        if "status" in fields and f"{fields['status']}_at" in TIME_FIELDS:
            fields.setdefault(f"{fields['status']}_at", int(time.time()))
        query = f"UPDATE batches SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?"
        args = [*fields.values(), batch_id]
        if only_if:
            query += f" AND status IN ({', '.join('?' * len(only_if))})"
            args += list(only_if)
        with self._lock:
            return bool(self._db.execute(query, args).rowcount)

    def _page(
        self,
        table: str,
        owner: str | None,
        limit: int,
        after: str | None,
        extra: tuple[str, str | None] = ("", None),
    ) -> list[tuple]:
        query, args = f"SELECT * FROM {table} WHERE owner IS ?", [owner]
        if extra[1] is not None:
            query, args = query + f" AND {extra[0]} = ?", [*args, extra[1]]
        if after is not None:
            query += f" AND rowid < (SELECT rowid FROM {table} WHERE id = ?)"
            args.append(after)
        with self._lock:
            return self._db.execute(query + " ORDER BY rowid DESC LIMIT ?", [*args, limit]).fetchall()

    # results
    def append_results(self, batch_id: str, results: list[Result]) -> None:
        """Store answered lines and move the batch's counts, in one transaction (see the module docstring).

        Raises:
            sqlite3.IntegrityError: a line was already stored (a worker bug: nothing is written).
            sqlite3.OperationalError: e.g. the disk is full (nothing is written).
        """
        ok = sum(200 <= r.status_code < 300 for r in results)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            batch_id,
                            r.line,
                            r.line_id or new_id("batch_req_"),
                            r.status_code,
                            r.request_id,
                            r.body,
                        )
                        for r in results
                    ],
                )
                self._db.execute(
                    "UPDATE batches SET completed = completed + ?, failed = failed + ? WHERE id = ?",
                    (ok, len(results) - ok, batch_id),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def done_lines(self, batch_id: str) -> set[int]:
        with self._lock:
            return {
                r[0] for r in self._db.execute("SELECT line FROM results WHERE batch_id = ?", (batch_id,))
            }

    def results(self, batch_id: str, chunk: int = 1000) -> Iterator[Result]:
        """The batch's answers in line order, read ``chunk`` at a time (a big batch never sits in memory)."""
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT line, status_code, request_id, body, line_id FROM results "
                    "WHERE batch_id = ? AND line > ? ORDER BY line LIMIT ?",
                    (batch_id, last, chunk),
                ).fetchall()
            if not rows:
                return
            for line, status, request_id, body, line_id in rows:
                yield Result(line, status, request_id, bytes(body), line_id)
            last = rows[-1][0]

    def drop_results(self, batch_id: str) -> None:
        """Forget a finished batch's answers (they live in its output files now)."""
        with self._lock:
            self._db.execute("DELETE FROM results WHERE batch_id = ?", (batch_id,))


def errors_json(errors: list[dict]) -> str:
    return json.dumps(errors)
