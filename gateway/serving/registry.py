"""Served models: name / alias -> ``ServedModel`` (config, engine, runner, tokenizer thread, load state)."""

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

from gateway.config import ModelConfig, Settings
from gateway.engines import Engine, load_engine, resolve_engine_name
from gateway.engines.detect import ModelRefused, default_task
from gateway.engines.memory import free_memory
from gateway.engines.sources import resolve_model_path
from gateway.engines.vision.dual_encoders import read_hf_config
from gateway.errors import EngineFailure, ModelNotFound, NotReady
from gateway.serving import request_context
from gateway.serving.admission import Admission
from gateway.serving.embedding_cache import build_cache
from gateway.serving.runner import Runner
from gateway.serving.tokenizer_queue import TokenizerQueue

log = logging.getLogger(__name__)
LoadState = Literal["loading", "ready", "failed"]
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
        self.redis = None
        if settings.cache_redis_url:
            from gateway.serving.redis_cache import RedisConnection, RedisStore

            self.redis = RedisConnection(settings.cache_redis_url, settings.cache_redis_timeout_s,
                                         settings.cache_redis_retry_s)
            store_factory = partial(RedisStore, self.redis)
        else:
            store_factory = None
        for config in settings.served_models():
            engine_name = resolve_engine_name(config.engine or settings.engine)
            served = ServedModel(config, engine_name, cache=build_cache(settings, store_factory))
            self.models.append(served)
            for name in config.served_names:
                if name in self._by_name:
                    raise ValueError(f"model name {name!r} is configured twice")
                self._by_name[name] = served

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
        """True when every model is loaded and no engine is failing."""
        return all(m.state == "ready" and m.runner and not m.runner.stats.failing for m in self.models)

    async def load_all(self, on_batch: Callable[[str], Callable] | None = None) -> None:
        """Load every model off the event loop and warm it up with one forward pass (skips loaded ones);
        first ping the Redis cache, if one is configured, so ``/health`` reports it from the start."""
        if self.redis is not None:
            await self.redis.call(self.redis.client.ping())
        for served in self.models:
            if served.state != "ready":
                await self._load(served, on_batch(served.name) if on_batch else None)
        freeze_loaded_objects()


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
        path = await asyncio.to_thread(resolve_model_path, served.config)
        unset = "task" not in served.config.model_fields_set
        if unset and (task := await asyncio.to_thread(default_task, path)):  # a classifier with named labels
            served.config = served.config.model_copy(update={"task": task})
        # "auto" is settled with the folder at hand: torch for what MLX cannot run (CLIP)
        requested = served.config.engine or self.settings.engine
        if served.config.task == "classify" and requested == "auto":
            requested = "torch"  # classifiers run on torch only (the MLX engine refuses them)
        served.engine_name = resolve_engine_name(requested, await asyncio.to_thread(read_hf_config, path))
        config = served.config.model_copy(update={"engine": served.engine_name})
        engine = await asyncio.to_thread(
            load_engine, config, path, memory_fraction=self.settings.mlx_memory_fraction,
            cpu_lanes=self.settings.cpu_lanes,
        )
        runner = Runner(
            engine,
            batch_tokens=self.settings.batch_tokens,
            max_queue_tokens=self.settings.max_queue_tokens,
            max_queue_wait_s=self.settings.max_queue_wait_s,
            on_batch=on_batch,
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
        """Stop every runner thread and tokenizer thread (in-flight batches finish), close Redis."""
        for served in self.models:
            if served.runner:
                served.runner.stop()
            served.tokenizer_thread.shutdown(wait=False)
        if self.redis is not None:
            await self.redis.close()


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
