"""Reading texts from and writing vectors to files, by extension.

In: ``.txt`` (one text a line; blank lines skipped, ids are line numbers from 0), ``.jsonl`` (the
``field`` of each object, ``id_field`` or the line number as id), ``.csv`` and ``.parquet`` (the
``column``, ``id_column`` or the row number as id). Out: ``.npy`` (``(n, dim)`` float32, rows in input
order), ``.parquet`` (columns ``id`` and ``embedding``, a list of float32) or ``.jsonl`` (``{"id",
"embedding"}`` a line). Parquet goes through pyarrow (Apache-2.0), imported only for parquet files.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

INPUT_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".parquet", ".jsonl")


class BadInput(ValueError):
    """The input cannot be read as asked (unknown suffix, missing field or column, a non-text value)."""


def read_texts(path: Path, field: str = "text", id_field: str | None = None) -> tuple[list[str], list]:
    """The texts of ``path`` and their ids, in file order.

    Raises:
        BadInput: naming the line or row at fault.
        OSError: the file cannot be read.
    """
    suffix = path.suffix.lower()
    if suffix == ".txt":
        pairs = [(number, line) for number, line in enumerate(path.read_text().splitlines()) if line.strip()]
        return [t for _, t in pairs], [n for n, _ in pairs]
    if suffix == ".jsonl":
        rows = [
            (number, json.loads(line))
            for number, line in enumerate(path.read_text().splitlines())
            if line.strip()
        ]
        return _pick(rows, field, id_field, "line")
    if suffix == ".csv":
        with open(path, newline="") as handle:
            return _pick(list(enumerate(csv.DictReader(handle))), field, id_field, "row")
    if suffix == ".parquet":
        pq = _pyarrow().parquet
        table = pq.read_table(path, columns=[field, *([id_field] if id_field else [])])
        return _pick(list(enumerate(table.to_pylist())), field, id_field, "row")
    raise BadInput(f"{path}: unknown input type {suffix!r}; use one of {', '.join(INPUT_SUFFIXES)}")


def _pick(
    rows: list[tuple[int, dict]], field: str, id_field: str | None, unit: str
) -> tuple[list[str], list]:
    texts, ids = [], []
    for number, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get(field), str) or not row[field].strip():
            raise BadInput(f"{unit} {number}: no text in {field!r}")
        texts.append(row[field])
        ids.append(row.get(id_field, number) if id_field else number)
    return texts, ids


def check_output(path: Path) -> None:
    """Refuse an output ``write_vectors`` could not write, before any work is done.

    Raises:
        BadInput: an unknown suffix, or ``.parquet`` without pyarrow.
    """
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise BadInput(f"{path}: unknown output type {suffix!r}; use one of {', '.join(OUTPUT_SUFFIXES)}")
    if suffix == ".parquet":
        _pyarrow()


def write_vectors(path: Path, vectors: np.ndarray, ids: list) -> None:
    """Write ``(n, dim)`` float32 ``vectors`` to ``path`` whole: a temporary file renamed at the end, so an
    interrupted write never leaves a file that looks complete.

    Raises:
        BadInput: an unknown output suffix.
        OSError: e.g. the disk is full.
    """
    check_output(path)
    suffix = path.suffix.lower()
    temp = path.with_name(f".{path.name}.partial")
    try:
        with open(temp, "wb") as handle:
            if suffix == ".npy":
                np.save(handle, vectors.astype(np.float32, copy=False))
            elif suffix == ".jsonl":
                for key, row in zip(ids, vectors.tolist(), strict=True):
                    handle.write(json.dumps({"id": key, "embedding": row}).encode() + b"\n")
            else:
                _write_parquet(handle, vectors, ids)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _pyarrow():
    """pyarrow with its parquet module, imported only for parquet files.

    Raises:
        BadInput: pyarrow is not installed (``pip install "gateway[parquet]"``).
    """
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - loads the submodule
    except ImportError:
        raise BadInput('.parquet files need pyarrow: pip install "gateway[parquet]"') from None
    return pyarrow


def _write_parquet(handle, vectors: np.ndarray, ids: list) -> None:
    pa = _pyarrow()
    pq = pa.parquet

    flat = pa.array(vectors.astype(np.float32, copy=False).ravel())
    embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    pq.write_table(pa.table({"id": ids, "embedding": embedding}), handle)
