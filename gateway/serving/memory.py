"""The serving process's memory, for ``/health`` and ``gateway bench``: resident set size, split into
anonymous (heap, weights copied into tensors) and file-backed pages (mapped libraries such as
libtorch_cpu.so, whose resident share depends on the page cache) where the kernel says so."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import msgspec


class Memory(msgspec.Struct):
    """Bytes resident in memory; None where the platform does not tell.

    Attributes:
        rss_bytes: resident set size now (Linux ``VmRSS``).
        anon_bytes / file_bytes: its anonymous and file-backed parts (Linux ``RssAnon`` / ``RssFile``).
        peak_rss_bytes: the largest resident set size so far (Linux ``VmHWM``, which starts anew at
            ``exec``; elsewhere ``getrusage``, which on Linux would include the peak of the parent that
            forked the process).
    """

    rss_bytes: int | None
    anon_bytes: int | None
    file_bytes: int | None
    peak_rss_bytes: int


def _status_kib(text: str, key: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def process_memory(pid: int | str = "self") -> Memory:
    """Memory of process ``pid`` (default: this one); on Linux read from ``/proc/<pid>/status``.

    Raises:
        OSError: ``pid`` is another process that does not exist (or cannot be read).
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    status = Path(f"/proc/{pid}/status")
    if not sys.platform.startswith("linux"):
        return Memory(None, None, None, peak)
    text = status.read_text()
    peak = _status_kib(text, "VmHWM") or peak
    kib = {key: _status_kib(text, key) for key in ("VmRSS", "RssAnon", "RssFile")}
    return Memory(kib["VmRSS"], kib["RssAnon"], kib["RssFile"], peak)
