"""The rules of the models' life cycle (``Registry`` applies them): keep-alive expiry, which model the
memory budget evicts, hub downloads with progress, and the events counted for the metrics and logged.

- A model is held by each request that uses it (``Registry.use``) and is idle when none does.
- An idle model whose ``expires_at`` (last request + ``keep_alive``) has passed is unloaded.
- Before a load would take the loaded models' weights over ``model_memory_budget``, the least recently
  used idle, unpinned, loaded model is unloaded, again until it fits; if none can be, the load is refused
  (503 with ``Retry-After``). Models being loaded or unloaded count as resident.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from gateway.config import Settings, parse_budget

if TYPE_CHECKING:
    from gateway.serving.registry import ServedModel

log = logging.getLogger("gateway.lifecycle")
ON_DEMAND_KEEP_ALIVE_S = 300.0  # an on-demand model without keep_alive: Ollama's default of 5 minutes
# a model loaded on demand stays at least this long, so the requests that awaited its load get to use it
# before a short keep_alive (0) unloads it; they hold it from then on
LOAD_GRACE_S = 5.0
RETRY_AFTER_S = 5  # a refused load (budget full of busy models, load past the deadline): retry then


class Events:
    """Counts of life-cycle events per model, read by the metrics at scrape time.

    Attributes:
        counts: ``(event, model, reason) -> n`` for ``load``, ``load_failed``, ``unload``; an eviction is an
            ``unload`` whose reason is ``memory_budget`` (others: ``keep_alive``, ``admin``, ``reload``).
        load_seconds: ``model -> [seconds of each load]`` (download, load and warm-up), the last 100.
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.load_seconds: dict[str, list[float]] = {}

    def count(self, event: str, model: str, reason: str = "") -> None:
        self.counts[(event, model, reason)] += 1

    def observe_load(self, model: str, seconds: float) -> None:
        self.count("load", model)
        self.load_seconds.setdefault(model, []).append(seconds)
        del self.load_seconds[model][:-100]


def log_event(event: str, served: ServedModel, **fields: object) -> None:
    """One life-cycle record (``loaded``, ``unloaded``, ``load_failed``, ``load_refused``,
    ``download_progress``), with ``event``, ``model`` and ``fields`` as JSON keys in the JSON log."""
    entry = {"event": event, "model": served.name, "state": served.state, "bytes": served.weights_bytes,
             **fields}
    log.info("model %s %s", served.name, event, extra={"fields": entry})


def unloads_models(settings: Settings) -> bool:
    """Whether models may be unloaded while the server runs (on-demand models, a keep_alive, a budget):
    then ``limit_malloc_arenas`` is worth it."""
    models = settings.served_models()
    return settings.model_memory_budget is not None or any(
        m.load == "on_demand" or m.keep_alive is not None for m in models)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``, as ``MALLOC_ARENA_MAX`` does) unless the
    environment sets it; call before threads start. Each model load starts new runner and tokenizer
    threads, and glibc gives new threads new arenas (up to 8 per core) whose freed pages it keeps: 20
    load / unload cycles of all-MiniLM-L6-v2 grew RSS by 153 MiB with the default arenas, by 10-25 MiB
    with 2 and ``trim_malloc`` after each unload (benchmarks/lifecycle_rss.py). False where it
    does not apply (not glibc, or set by the environment)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(-8, arenas))  # M_ARENA_MAX = -8 (malloc.h)


def trim_malloc() -> None:
    """Give the heap's free pages back to the system after an unload (glibc ``malloc_trim``; elsewhere,
    nothing): the weights' pages are free by then, but malloc would keep them."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - only glibc has both
    except (OSError, AttributeError):
        return None
    return libc


def budget_bytes(settings: Settings) -> int | None:
    """``model_memory_budget`` in bytes (None: no budget); shares of the machine's memory, or of the first
    CUDA GPU's when torch sees one."""
    if settings.model_memory_budget is None:
        return None
    return parse_budget(settings.model_memory_budget, total_memory=machine_memory_bytes(),
                        total_gpu_memory=gpu_memory_bytes())


def machine_memory_bytes() -> int:
    """Physical memory of the machine in bytes (POSIX ``sysconf``)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def gpu_memory_bytes() -> int | None:
    """Total memory of CUDA device 0 in bytes, or None (no torch, no CUDA)."""
    try:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - no GPU is an answer, not an error
        return None


def eviction_candidate(models: Iterable[ServedModel]) -> ServedModel | None:
    """The model to unload to make room: loaded, idle, not pinned, least recently used first."""
    idle = [m for m in models if m.state == "ready" and not m.config.pinned and m.idle]
    return min(idle, key=lambda m: m.last_used or 0.0, default=None)


def expired(models: Iterable[ServedModel], now: float) -> list[ServedModel]:
    """Loaded, idle models whose keep-alive has run out at ``now`` (wall-clock seconds)."""
    return [m for m in models if m.state == "ready" and m.idle and m.expires_at is not None
            and m.expires_at <= now]


def next_expiry_s(models: Iterable[ServedModel], now: float) -> float | None:
    """Seconds until the next idle loaded model expires (at least 0.01); None: none will."""
    times = [m.expires_at for m in models if m.state == "ready" and m.expires_at is not None]
    return max(0.01, min(times) - now) if times else None


def safe_weights_bytes(path: str) -> int | None:
    """``weights_size.weights_bytes`` of a folder, or None when its headers cannot be read (logged)."""
    from gateway.serving.weights_size import weights_bytes

    try:
        return weights_bytes(path)
    except Exception as exc:  # noqa: BLE001 - no size only means the budget cannot count this model
        log.warning("cannot read the weight sizes under %s: %s", path, exc)
        return None


async def fetch_weights(served: ServedModel, resolve: Callable[..., str]) -> str:
    """The model's local folder: a folder source or the embedded default as it is; a hub id downloaded
    (or found in the cache) with huggingface_hub, at its ``revision``, honouring ``HF_HUB_OFFLINE``;
    progress in ``served.download`` (``{"done", "total"}`` bytes) while it runs. ``resolve(config,
    tqdm_class=...)``: ``engines.sources.resolve_model_path``.

    Raises:
        whatever huggingface_hub raises (offline and not cached, not found, network errors).
    """
    import asyncio
    import inspect

    def run() -> str:
        # resolve: engines.sources.resolve_model_path, as the registry module names it (tests replace
        # it there with stand-ins that take the config alone)
        if "tqdm_class" in inspect.signature(resolve).parameters:
            return resolve(served.config, tqdm_class=progress_bar_class(served))
        return resolve(served.config)

    return await asyncio.to_thread(run)


def progress_bar_class(served: ServedModel) -> type:
    """A tqdm class for ``snapshot_download(tqdm_class=...)`` that draws nothing and keeps the byte bars'
    progress in ``served.download`` (the bars counted in bytes; the hub has one for the bytes received)."""
    from tqdm import tqdm

    lock = threading.Lock()
    bars: list[tqdm] = []

    class Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()  # drawn nowhere: the server's stderr is its log
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            if self.unit == "B":
                with lock:
                    bars.append(self)
            self._report()

        def update(self, n=1):
            result = super().update(n)
            self._report()
            return result

        def refresh(self, *args, **kwargs):
            self._report()
            return super().refresh(*args, **kwargs)

        def _report(self) -> None:
            with lock:
                if not bars:
                    return
                done = max(int(bar.n) for bar in bars)
                total = max(int(bar.total or 0) for bar in bars)
            served.download = {"done": done, "total": total}

    return Progress
