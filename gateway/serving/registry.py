"""Served models: name / alias -> ``ServedModel`` (config, engine, runner, tokenizer thread, load state),
and their life cycle: loaded at start-up or on demand (``use``), unloaded when idle past their
``keep_alive``, evicted least recently used first to fit ``model_memory_budget``
(``gateway.serving.lifecycle`` holds the policy, this module the mechanics)."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from gateway.config import ModelConfig, Settings, parse_keep_alive
from gateway.engines import Engine, load_engine, resolve_engine_name
from gateway.engines.detect import ModelRefused, default_task
from gateway.engines.memory import free_memory
from gateway.engines.sources import resolve_model_path
from gateway.engines.vision.dual_encoders import read_hf_config
from gateway.errors import EngineFailure, ModelNotFound, ModelUnavailable, NotReady
from gateway.serving import lifecycle, request_context
from gateway.serving.admission import Admission
from gateway.serving.embedding_cache import build_cache
from gateway.serving.runner import Runner
from gateway.serving.tokenizer_queue import TokenizerQueue

log = logging.getLogger(__name__)
# unloaded: configured, not in memory (an on-demand model before its first request, or after an unload)
LoadState = Literal["unloaded", "loading", "ready", "unloading", "failed"]
UNSET: Any = object()  # keep_alive not given by the request: the model's own applies
RUNNER_JOIN_S = 30.0  # a failed model's runner threads are idle: they exit at once once stopped
# (served model, on_batch callback or None) -> its engine and a runner-shaped object (``run(kind, tokens)``)
ModelLoader = Callable[["ServedModel", Callable | None], Awaitable[tuple[Engine, Runner]]]


def tokenizer_executor() -> TokenizerQueue:
    """A model's one tokenizer thread (started on first use), short calls first (``tokenizer_queue``)."""
    return TokenizerQueue()


@dataclass(eq=False)
class ServedModel:
    """One configured model and, once loaded, its engine and runner.

    Tokenization runs one call at a time under ``tokenizer_lock`` (HF tokenizers are not safe to share
    across threads that change truncation): on ``tokenizer_thread`` (short calls first, see
    ``tokenizer_queue``), or inline on the event loop for tiny inputs (see ``tokenize``). Forward passes
    run on the runner's threads. ``admission`` is the model's in-flight budget, checked before tokenizing.
    """

    config: ModelConfig
    engine_name: str
    state: LoadState = "loading"
    error: str | None = None
    load_ms: float | None = None
    engine: Engine | None = None
    runner: Runner | None = None
    tokenizer_thread: TokenizerQueue = field(default_factory=lambda: tokenizer_executor())
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    cache: Any = None  # its embedding cache (``embedding_cache.ModelCache``), None when off
    admission: Admission = field(default_factory=Admission)
    # life cycle (gateway.serving.lifecycle): requests holding it, when it was last used and when it
    # expires (wall-clock seconds; None: never), weight bytes (safetensors headers), the load or unload
    # under way (requests arriving meanwhile await it), hub download progress
    in_flight: int = 0
    last_used: float | None = None
    expires_at: float | None = None
    loaded_at: float | None = None
    weights_bytes: int | None = None
    transition: asyncio.Task | None = None
    drained: asyncio.Event | None = None
    download: dict | None = None  # {"done": bytes, "total": bytes} while (or after) the hub download runs
    local_path: str | None = None  # the resolved folder
    startup_loading: bool = False  # the start-up load runs: requests get 503 meanwhile, as they always did
    retry_on_request: bool = False  # a failed on-demand load or download: the next request tries again

    @property
    def name(self) -> str:
        return self.config.name

    def ready(self) -> tuple[Engine, Runner]:
        """The engine and runner of a loaded model.

        Raises:
            NotReady: the model is still loading or failed to load (503).
        """
        if self.state != "ready" or self.engine is None or self.runner is None:
            raise NotReady(f"model {self.name!r} is not ready ({self.state})")
        return self.engine, self.runner

    @property
    def idle(self) -> bool:
        """No request holds the model, nothing of it is queued or being tokenized."""
        queued = self.runner.queued_items if self.runner is not None else 0
        return self.in_flight == 0 and queued == 0 and not self.admission.tickets

    def default_keep_alive_s(self) -> float | None:
        """Seconds the model stays loaded after its last request when the request says nothing; None:
        forever (``keep_alive``; default forever at start-up, ``ON_DEMAND_KEEP_ALIVE_S`` on demand)."""
        if self.config.keep_alive is not None:
            return parse_keep_alive(self.config.keep_alive)
        return None if self.config.load == "startup" else lifecycle.ON_DEMAND_KEEP_ALIVE_S

    async def tokenize(self, func: Callable, *args, tiny: bool = False, short: bool = False, **kwargs):
        """Run an engine tokenization function ``func(*args, **kwargs)`` under ``tokenizer_lock``.

        ``tiny`` (the caller's inputs take at most about 0.1 ms to tokenize, e.g. one search query; see
        ``service.TINY_INPUT_CHARS``): run it inline when no other tokenization holds the lock. That
        skips two thread hops, about 0.1 ms of CPU per request; on 2 cores at concurrency 32, +3-4%
        one-text requests/s. Anything else, or a tiny call that finds the lock taken, runs on
        ``tokenizer_thread``, so the event loop never waits; there ``short`` (or ``tiny``) calls go
        before every waiting long one; a batch job's lines always take the long lane. Cancelling the
        caller before the call started skips it.
        """
        if request_context.is_background():  # a batch job's line: behind every online call, never inline
            tiny = short = False
        if tiny and self.tokenizer_lock.acquire(blocking=False):
            try:
                return func(*args, **kwargs)
            finally:
                self.tokenizer_lock.release()
        future = self.tokenizer_thread.submit(self._locked_call, func, args, kwargs, short=short or tiny)
        return await asyncio.wrap_future(future)

    def _locked_call(self, func: Callable, args: tuple, kwargs: dict):
        with self.tokenizer_lock:  # held by the event loop only for a tiny inline call, never across an await
            return func(*args, **kwargs)


class Registry:
    """Routes ``model`` names and aliases to served models.

    Args:
        loader: how a model gets its engine and runner; default: load the weights in this process.
            Ray Serve's ingress passes one that connects to the model's deployment instead
            (``gateway.deploy``).

    Raises on construction:
        ValueError: two models share a name or alias.
    """

    def __init__(self, settings: Settings, loader: ModelLoader | None = None) -> None:
        self.settings = settings
        self.loader = loader or self._load_local
        self.models: list[ServedModel] = []
        self._by_name: dict[str, ServedModel] = {}
        self.clock: Callable[[], float] = time.time  # wall-clock seconds; tests may inject their own
        self.events = lifecycle.Events()  # counts of loads / unloads / evictions, for the metrics
        self.budget_bytes = lifecycle.budget_bytes(settings)
        self._on_batch: Callable[[str], Callable] | None = None
        self._started = False  # the start-up loads are done (all_ready)
        self._budget_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._reaper: asyncio.Task | None = None
        self.redis = None
        if settings.cache_redis_url:
            from gateway.serving.redis_cache import RedisConnection, RedisStore

            self.redis = RedisConnection(settings.cache_redis_url, settings.cache_redis_timeout_s,
                                         settings.cache_redis_retry_s)
            store_factory = partial(RedisStore, self.redis)
        else:
            store_factory = None
        self._store_factory = store_factory
        for config in settings.served_models():
            self.add(config)

    def add(self, config: ModelConfig) -> ServedModel:
        """Serve one more model (not loaded yet: ``load_all`` or its first request loads it).

        Raises:
            ValueError: one of its names is already served.
        """
        taken = [name for name in config.served_names if name in self._by_name]
        if taken or len(set(config.served_names)) != len(config.served_names):
            raise ValueError(f"model name {(taken or config.served_names)[0]!r} is configured twice")
        engine_name = resolve_engine_name(config.engine or self.settings.engine)
        state = "loading" if config.load == "startup" else "unloaded"
        cache = build_cache(self.settings, self._store_factory)
        served = ServedModel(config, engine_name, state=state, cache=cache)
        self.models.append(served)
        for name in config.served_names:
            self._by_name[name] = served
        return served

    def replace(self, old: ServedModel, config: ModelConfig) -> ServedModel:
        """Serve ``config`` instead of ``old`` under its names, at once (not loaded yet); ``old`` is left
        to the requests holding it (unload it: ``unload``).

        Raises:
            ValueError: a new name or alias is served by another model.
        """
        self.remove(old)
        try:
            served = self.add(config)
        except ValueError:
            self.models.append(old)
            self._by_name.update(dict.fromkeys(old.config.served_names, old))
            raise
        if config.load == "startup":
            served.state = "unloaded"  # loaded by the caller (a reload), requests meanwhile load it too
        if self._reaper is not None:  # added after start-up: loaded by its first request (or the caller)
            served.state = "unloaded"
        return served

    def remove(self, served: ServedModel) -> None:
        """Stop serving a model (its names answer 404 from now on); unload it first (``unload``)."""
        self.models.remove(served)
        for name in served.config.served_names:
            self._by_name.pop(name, None)

    @property
    def names(self) -> list[str]:
        """Every served name and alias, in config order."""
        return list(self._by_name)

    def get(self, name: str) -> ServedModel:
        """The model served under ``name``.

        Raises:
            ModelNotFound: no model has that name or alias (404).
            PermissionDenied: the request's API key may not use this model (403).
        """
        served = self._by_name.get(name)
        if served is None:
            visible = ", ".join(request_context.visible_names(self.names))  # only those the key may use
            raise ModelNotFound(f"The model '{name}' does not exist. Served models: {visible}", param="model")
        request_context.authorize_model(name, served.config.served_names)
        request_context.note_model(served.name)
        return served

    @property
    def all_ready(self) -> bool:
        """True when every start-up model has loaded and no loaded engine is failing. On-demand models load
        when asked for, and a model unloaded since (idle past its keep_alive, evicted, by the admin API)
        loads again when asked for: neither holds readiness back; a model that failed to load does."""
        def ok(m: ServedModel) -> bool:
            if m.state == "ready":
                return bool(m.runner) and not m.runner.stats.failing
            if m.config.load == "on_demand":
                return True
            return self._started and m.state in ("unloaded", "unloading", "loading")

        return all(ok(m) for m in self.models)

    async def load_all(self, on_batch: Callable[[str], Callable] | None = None, *,
                       on_demand_too: bool = False) -> None:
        """Load every start-up model off the event loop and warm it up with one forward pass (skips loaded
        ones); first ping the Redis cache, if one is configured, so ``/health`` reports it from the start.
        Then start the keep-alive watcher, unless ``on_demand_too``: load the on-demand models as well and
        keep everything loaded (a Ray model replica, ``gateway embed``: processes that serve one job).
        ``on_batch(name)`` gives a model's per-batch callback (the metrics); later loads use it too."""
        if on_batch is not None:
            self._on_batch = on_batch
        if self.redis is not None:
            await self.redis.call(self.redis.client.ping())
        for served in list(self.models):
            if served.state != "ready" and (served.config.load == "startup" or on_demand_too):
                served.startup_loading = True
                try:
                    await self._transition(served, self._load_now(served))
                finally:
                    served.startup_loading = False
        self._started = True
        freeze_loaded_objects()
        if not on_demand_too:
            self.start_reaper()

    async def use(self, name: str, keep_alive: Any = UNSET) -> ServedModel:
        """The model served under ``name``, loaded: an unloaded one is loaded now and the caller waits
        (within ``request_timeout_s``); callers arriving meanwhile share that one load. Inside a request
        the model is held until the request ends (it is neither evicted nor unloaded meanwhile), then
        stays loaded for ``keep_alive`` (the request's, e.g. Ollama's, else the model's own).

        Raises:
            ModelNotFound (404), PermissionDenied (403): as ``get``.
            NotReady (503): a start-up model still loading at start, or one that failed to load.
            ModelUnavailable (503, Retry-After): it did not load within the deadline, or
                ``model_memory_budget`` is full of models in use.
        """
        served = self.get(name)
        keep_alive_s = served.default_keep_alive_s() if keep_alive is UNSET else parse_keep_alive(keep_alive)
        if keep_alive is not UNSET and keep_alive is None:
            keep_alive_s = served.default_keep_alive_s()
        deadline = time.monotonic() + self.settings.request_timeout_s
        while served.state != "ready":
            if served.transition is not None and not served.transition.done():
                if served.state == "loading" and served.startup_loading:
                    served.ready()  # the start-up load: 503 until it is done, as before any request waits
                await self._await_transition(served, deadline)
            elif served.state == "unloaded" or (served.state == "failed" and served.retry_on_request):
                self.start_load(served)
            else:
                served.ready()  # failed for good (or still loading at start-up): NotReady, 503
        self._hold(served, keep_alive_s)
        return served

    async def _await_transition(self, served: ServedModel, deadline: float) -> None:
        left = deadline - time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(served.transition), max(0.0, left))
        except TimeoutError:
            raise ModelUnavailable(f"model {served.name!r} is still loading; retry later",
                                   retry_after_s=lifecycle.RETRY_AFTER_S) from None
        if served.state == "failed":  # the next request tries again (retry_on_request)
            raise NotReady(f"model {served.name!r} failed to load: {served.error}")
        if served.state == "unloaded" and served.error:  # no room under the memory budget
            raise ModelUnavailable(served.error, retry_after_s=lifecycle.RETRY_AFTER_S)

    def _hold(self, served: ServedModel, keep_alive_s: float | None) -> None:
        """Count the current request as using ``served`` until it ends (``request_context.hold``); a
        request holds a model once (its first ``use`` sets the keep-alive)."""
        if request_context.holds(served):
            return
        served.in_flight += 1
        served.last_used = self.clock()
        served.expires_at = None

        def release() -> None:
            served.in_flight -= 1
            served.last_used = self.clock()
            if served.in_flight == 0:
                served.expires_at = None if keep_alive_s is None else served.last_used + keep_alive_s
                if served.drained is not None:
                    served.drained.set()
                self.wake()

        if not request_context.hold(served, release):
            release()  # outside a request (warm-up, tests, the CLI): nothing to hold it for

    def start_load(self, served: ServedModel) -> asyncio.Task:
        """Start loading ``served`` (or return the load or unload already under way)."""
        if served.transition is None or served.transition.done():
            served.state, served.error = "loading", None
            served.transition = asyncio.ensure_future(self._load_now(served, on_demand=True))
        return served.transition

    async def load(self, served: ServedModel) -> None:
        """Load ``served`` now if it is not loaded (the admin API); waits for what is under way first.

        Raises:
            ModelUnavailable: no room under ``model_memory_budget``.
        """
        while served.state != "ready":
            if served.transition is not None and not served.transition.done():
                await asyncio.shield(served.transition)
                if served.state == "unloaded" and served.error:
                    raise ModelUnavailable(served.error, retry_after_s=lifecycle.RETRY_AFTER_S)
                if served.state == "failed":
                    return
            else:
                self.start_load(served)

    async def unload(self, served: ServedModel, reason: str = "admin") -> None:
        """Unload ``served``: new requests for it wait (then load it again), those in flight finish first
        (drain), then its runner and tokenizer threads stop and its engine, weights and cached vectors are
        freed. A no-op when it is not loaded."""
        while served.transition is not None and not served.transition.done():
            await asyncio.shield(served.transition)
        if served.state != "ready":
            return
        served.state = "unloading"
        served.transition = asyncio.ensure_future(self._unload_now(served, reason))
        await asyncio.shield(served.transition)

    async def _transition(self, served: ServedModel, work: Awaitable[None]) -> None:
        served.transition = asyncio.ensure_future(work)
        await asyncio.shield(served.transition)

    async def _load_now(self, served: ServedModel, on_demand: bool = False) -> None:
        """Resolve the folder (downloading it), make room under the budget, load and warm up."""
        served.state, served.error = "loading", None
        start = time.perf_counter()
        if self.loader == self._load_local:
            try:
                served.local_path = await lifecycle.fetch_weights(served, resolve_model_path)
            except Exception as exc:  # noqa: BLE001 - a failed download marks the model failed, retried later
                log.error("model %s: download failed: %s", served.name, exc)
                served.state, served.error = "failed", f"download failed: {type(exc).__name__}: {exc}"
                served.retry_on_request = True
                lifecycle.log_event("load_failed", served, reason="download")
                self.events.count("load_failed", served.name)
                return
            served.weights_bytes = await asyncio.to_thread(lifecycle.safe_weights_bytes, served.local_path)
            try:
                await self._make_room(served)
            except ModelUnavailable as exc:
                served.state, served.error = "unloaded", exc.message
                lifecycle.log_event("load_refused", served, reason="memory_budget")
                return
        on_batch = self._on_batch(served.name) if self._on_batch else None
        await self._load(served, on_batch)
        if served.state == "ready":
            served.loaded_at = self.clock()
            served.last_used = served.last_used or served.loaded_at
            keep_alive_s = served.default_keep_alive_s()
            if keep_alive_s is not None and on_demand:  # the requests awaiting the load hold it first
                keep_alive_s = max(keep_alive_s, lifecycle.LOAD_GRACE_S)
            served.expires_at = None if keep_alive_s is None else served.loaded_at + keep_alive_s
            served.retry_on_request = False
            self.events.observe_load(served.name, time.perf_counter() - start)
            lifecycle.log_event("loaded", served, seconds=round(time.perf_counter() - start, 3))
            if on_demand:
                await asyncio.to_thread(freeze_loaded_objects)
            self.wake()
        else:
            served.retry_on_request = on_demand or served.config.load == "on_demand"
            self.events.count("load_failed", served.name)
            lifecycle.log_event("load_failed", served, reason=served.error)

    async def _make_room(self, served: ServedModel) -> None:
        """Unload least recently used idle, unpinned models until ``served`` fits the memory budget.

        Raises:
            ModelUnavailable: the model alone exceeds the budget, or the others are in use or pinned.
        """
        if self.budget_bytes is None:
            return
        if self._budget_lock is None:
            self._budget_lock = asyncio.Lock()
        async with self._budget_lock:
            size = served.weights_bytes or 0
            if size > self.budget_bytes:
                raise ModelUnavailable(f"model {served.name!r} needs {size} bytes, more than "
                                       f"model_memory_budget ({self.budget_bytes} bytes)")
            while True:
                others = [m for m in self.models
                          if m is not served and m.state in ("ready", "loading", "unloading")]
                resident = sum(m.weights_bytes or 0 for m in others)
                if resident + size <= self.budget_bytes:
                    served.state = "loading"
                    return
                victim = lifecycle.eviction_candidate(others)
                if victim is None:
                    raise ModelUnavailable(
                        f"model {served.name!r} needs {size} bytes but model_memory_budget "
                        f"({self.budget_bytes} bytes) is full of models in use or pinned; retry later",
                        retry_after_s=lifecycle.RETRY_AFTER_S)
                log.info("evicting model %s (least recently used) to load %s", victim.name, served.name)
                await self.unload(victim, reason="memory_budget")

    async def _unload_now(self, served: ServedModel, reason: str) -> None:
        while served.in_flight > 0 or not served.idle:  # drain: the requests holding it finish first
            served.drained = asyncio.Event()
            if served.in_flight > 0:
                await served.drained.wait()
            else:  # queued work without a request holding it (outside HTTP): poll the runner briefly
                await asyncio.sleep(0.01)
        served.drained = None
        runner = served.runner
        if runner is not None:
            runner.stop()
            await asyncio.to_thread(runner.join, RUNNER_JOIN_S)
        runner = None
        gc.unfreeze()  # frozen objects are never collected as cycles (freeze_loaded_objects)
        served.cache = build_cache(self.settings, self._store_factory)  # drop its cached vectors
        await release(served)
        await asyncio.to_thread(lifecycle.trim_malloc)
        served.state, served.expires_at, served.loaded_at, served.load_ms = "unloaded", None, None, None
        self.events.count("unload", served.name, reason)
        lifecycle.log_event("unloaded", served, reason=reason)
        await asyncio.to_thread(freeze_loaded_objects)

    def wake(self) -> None:
        """Tell the keep-alive watcher that an expiry may have changed."""
        if self._wake is not None:
            self._wake.set()

    def start_reaper(self) -> None:
        """Start the task that unloads models idle past their ``keep_alive`` (once; on the running loop)."""
        if self._reaper is None or self._reaper.done():
            self._wake = asyncio.Event()
            self._reaper = asyncio.ensure_future(self._reap())

    async def _reap(self) -> None:
        while True:
            now = self.clock()
            for served in lifecycle.expired(self.models, now):
                try:
                    await self.unload(served, reason="keep_alive")
                except Exception:  # noqa: BLE001 - the watcher must outlive one failed unload
                    log.exception("unloading model %s failed", served.name)
            wait = lifecycle.next_expiry_s(self.models, self.clock())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass


    async def _load(self, served: ServedModel, on_batch: Callable | None) -> None:
        """Load and warm up one model. On failure the model is ``failed`` with the cause in ``error``
        (``/health``), and nothing of it stays alive: its runner threads are stopped and joined, its
        tokenizer thread shut down, its engine dropped and the memory allocators' caches emptied."""
        start = time.perf_counter()
        engine = runner = None
        stage = "loading"
        try:
            engine, runner = await self.loader(served, on_batch)
            stage = "warm-up"
            await _warm_up(served, engine, runner)
        except ModelRefused as exc:  # a folder whose outputs are not served: the reason is the whole story
            log.error("refused model %s: %s", served.name, exc)
            served.state, served.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        except Exception as exc:  # noqa: BLE001 - a bad model must not take the server down
            log.exception("model %s failed at %s", served.name, stage)
            served.state, served.error = "failed", f"{stage} failed: {failure_cause(exc, runner)}"
        else:
            served.engine, served.runner = engine, runner
            served.load_ms = (time.perf_counter() - start) * 1000
            served.state = "ready"
            spec = engine.spec
            log.info("model %s ready on %s/%s (%s%s) in %.0f ms", served.name, spec.engine, spec.device,
                     spec.dtype, f", {spec.quantization}" if spec.quantization else "", served.load_ms)
            return
        # Failed (and out of the except block, so the exception and its frames are gone): free it all.
        if runner is not None:
            runner.stop()
            await asyncio.to_thread(runner.join, RUNNER_JOIN_S)
        engine = runner = None  # the last references to the model's weights
        await release(served)

    async def _load_local(self, served: ServedModel, on_batch: Callable | None) -> tuple[Engine, Runner]:
        """The model's weights in this process, off the event loop, and a runner for them."""
        path = served.local_path or await asyncio.to_thread(resolve_model_path, served.config)
        unset = "task" not in served.config.model_fields_set
        if unset and (task := await asyncio.to_thread(default_task, path)):  # a classifier with named labels
            served.config = served.config.model_copy(update={"task": task})
        # "auto" is settled with the folder at hand: torch for what MLX cannot run (CLIP)
        requested = served.config.engine or self.settings.engine
        if served.config.task == "classify" and requested == "auto":
            requested = "torch"  # classifiers run on torch only (the MLX engine refuses them)
        served.engine_name = resolve_engine_name(requested, await asyncio.to_thread(read_hf_config, path))
        config = served.config.model_copy(update={"engine": served.engine_name})
        # the engine comes back through a list, not as the thread's result: the executor's work item holds
        # its result until that thread runs again, and an engine still held then by a worker thread when
        # load_all freezes the heap (freeze_loaded_objects) could never be collected if its warm-up failed
        loaded: list[Engine] = []
        await asyncio.to_thread(
            lambda: loaded.append(_load_one_at_a_time(config, path,
                                                      memory_fraction=self.settings.mlx_memory_fraction,
                                                      cpu_lanes=self.settings.cpu_lanes,
                                                      torchscript=self.settings.torchscript)))
        engine = loaded.pop()
        runner = Runner(
            engine,
            batch_tokens=self.settings.batch_tokens,
            max_queue_tokens=self.settings.max_queue_tokens,
            max_queue_wait_s=self.settings.max_queue_wait_s,
            on_batch=on_batch,
            in_flight=lambda: len(served.admission.tickets),  # read on a lane thread: len() is atomic
        )
        return engine, runner

    def cache_health(self) -> dict:
        """The embedding cache's state for ``/health``: backend, whether it works, its last error."""
        if self.redis is not None:
            return self.redis.health()
        caches = [m.cache for m in self.models if m.cache is not None]
        if not caches:
            return {"backend": "off", "ok": True}
        return {"backend": "memory", "ok": True, "bytes": sum(c.stats.bytes for c in caches),
                "max_bytes_per_model": self.settings.cache_max_bytes}

    async def close(self) -> None:
        """Stop the keep-alive watcher, every runner thread and tokenizer thread (in-flight batches
        finish), close Redis."""
        if self._reaper is not None:
            self._reaper.cancel()
        for served in self.models:
            if served.runner:
                served.runner.stop()
            served.tokenizer_thread.shutdown(wait=False)
        if self.redis is not None:
            await self.redis.close()


_LOADING = threading.Lock()


def _load_one_at_a_time(config: ModelConfig, path: str, **options) -> Engine:
    """``load_engine`` under a process-wide lock: transformers' ``from_pretrained(dtype=...)`` sets torch's
    global default dtype while it builds the model, so two loads in two threads (an on-demand load while
    a start-up one runs) mixed bfloat16 and float32 layers ("mat1 and mat2 must have the same dtype")."""
    with _LOADING:
        return load_engine(config, path, **options)


def failure_cause(exc: Exception, runner: Runner | None) -> str:
    """``Type: message`` of what made a load or warm-up fail. A forward pass that raised reaches the
    caller as the runner's generic ``EngineFailure`` (what clients get): the engine's own exception is in
    the runner's ``stats.last_error``."""
    if isinstance(exc, EngineFailure) and runner is not None and runner.stats.last_error:
        return runner.stats.last_error
    return f"{type(exc).__name__}: {exc}"


async def release(served: ServedModel) -> None:
    """Free what a model that failed to load still holds once its runner is stopped and dropped: shut
    down its tokenizer thread, collect the engine and empty the device memory caches (``free_memory``).
    A later ``load_all`` retries the model: it gets a fresh tokenizer executor (no thread until used)."""
    idle, served.tokenizer_thread = served.tokenizer_thread, tokenizer_executor()
    await asyncio.to_thread(idle.shutdown, True)  # idle: no request tokenizes for a model that is not ready
    served.engine = served.runner = None
    await asyncio.to_thread(free_memory)


async def _warm_up(served: ServedModel, engine: Engine, runner: Runner) -> None:
    """One real forward pass, so the first request does not pay for lazy initialisation."""
    if engine.spec.task == "rerank":
        await runner.run("score", await served.tokenize(engine.tokenize_pairs, [("warm", "up")]))
    elif engine.spec.task == "classify":
        await runner.run("classify", await served.tokenize(engine.tokenize, ["warm up"]))
    elif "dense" not in engine.spec.outputs:  # sparse / multi-vector models: their own output
        await runner.run(engine.spec.outputs[0], await served.tokenize(engine.tokenize, ["warm up"]))
    else:
        await runner.run("embed", await served.tokenize(engine.tokenize, ["warm up"]))


def freeze_loaded_objects() -> None:
    """Move every object alive now (torch, transformers, the models: millions of them) out of the cyclic
    garbage collector's reach (``gc.freeze``). Each full collection walked them all while holding the GIL:
    94-251 ms pauses of every thread, the event loop included, whenever a big request's allocations
    triggered one (measured with gc.callbacks under an 8 MiB request); frozen, a collection walks only
    what requests allocate. Frozen objects are still freed by reference counting; only cycles among them
    stay (code that unloads a model must ``gc.unfreeze()`` first)."""
    gc.collect()
    gc.freeze()
