"""Finished chunks of a ``gateway embed`` run, kept beside the output so ``--resume`` redoes none of them.

``OUTPUT.parts/`` holds ``run.json`` (what the run embeds: input path, size and mtime, model, chunk size,
dimensions) and one ``<chunk number>.npy`` per finished chunk of ``chunk`` texts, each written to a
temporary name and renamed, so a chunk file is always whole. A resumed run must match ``run.json``;
the folder is removed once the output is written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np


class Parts:
    """The chunk folder of one output file.

    Args:
        output: the output file.
        run: what the run embeds (compared with a previous run's on ``--resume``).
        resume: continue a previous run's chunks; False and a folder already there: ``FileExistsError``.

    Raises:
        FileExistsError: chunks of an earlier run are there and ``resume`` is False.
        ValueError: ``resume`` with chunks of a different run (another input, model or chunk size).
    """

    def __init__(self, output: Path, run: dict, *, resume: bool) -> None:
        self.folder = output.with_name(output.name + ".parts")
        meta = self.folder / "run.json"
        if self.folder.exists() and not resume:
            raise FileExistsError(
                f"{self.folder} holds an interrupted run: add --resume to continue it, or "
                "remove it to start over"
            )
        if resume and meta.exists() and json.loads(meta.read_text()) != run:
            raise ValueError(
                f"{self.folder} holds a run of other settings ({meta.read_text().strip()}); remove "
                "it to start over"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(run))

    def done(self) -> set[int]:
        """Numbers of the chunks already finished."""
        return {int(p.stem) for p in self.folder.glob("*.npy") if p.stem.isdigit()}

    def save(self, number: int, vectors: np.ndarray) -> None:
        temp = self.folder / f".{number}.partial"
        with open(temp, "wb") as handle:
            np.save(handle, vectors)
        os.replace(temp, self.folder / f"{number}.npy")

    def load(self, count: int) -> np.ndarray:
        """Every chunk, 0..count-1, stacked: ``(n, dim)`` float32."""
        return np.concatenate([np.load(self.folder / f"{i}.npy") for i in range(count)])

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
