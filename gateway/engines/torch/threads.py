"""How torch's OpenMP worker threads wait, set in the environment before torch is imported (by the CLI and
by each Ray model replica). Imports nothing, torch least of all."""

from __future__ import annotations

import os


def let_idle_openmp_threads_sleep() -> None:
    """Make torch's OpenMP workers sleep at once when idle (``GOMP_SPINCOUNT=0``) unless the user chose.

    A server always runs busy threads beside torch's (event loop, tokenizer, often its clients): workers
    spinning between parallel regions steal those cores, and a descheduled worker stalls every region.
    On the 2-core CI box with other jobs running, 2-thread encode fell from ~180 to ~25 texts/s with the
    default spinning. Must run before torch is imported; ``gateway bench`` gets the same setting, so its
    in-process reference runs like the server.
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "0")
