"""Operational routes: ``GET /health`` (process up, per-model state) and ``GET /ready`` (models loaded).

With API keys configured, ``/health`` answers everyone (probes need no key) but discloses only ``status``
to a caller without a valid key (missing or wrong: still 200, so a probe with a stale key keeps working).
A valid key sees the version, uptime and the models it may use (``/v1/models``' rule); the cache state
(whose error text may name the Redis host), the process memory and the seed projects' fields (default model,
machine memory: ``seed_health``) only to a key allowed every model.
Without API keys, everyone sees everything.
"""

from __future__ import annotations

import time

import msgspec
from litestar import Response, get
from litestar.datastructures import State

from gateway import __version__
from gateway.http.routes.seed_health import with_seed_fields
from gateway.serving import request_context
from gateway.serving.memory import Memory, process_memory
from gateway.serving.multimodal import served_modalities
from gateway.serving.registry import Registry, ServedModel


class ModelHealth(msgspec.Struct):
    name: str
    aliases: list[str]
    state: str
    engine: str
    device: str | None
    task: str
    load_ms: float | None
    last_batch_ms: float | None
    queued_inputs: int
    dropped_inputs: int  # inputs of cancelled, timed-out or failed requests that never reached the engine
    error: str | None
    modalities: list[str] | None = None  # what the model embeds (None: not known before it loads)
    outputs: list[str] | None = None  # dense, sparse, multi_vector, classify, rerank (None: not loaded yet)
    dtype: str | None = None  # number format of the forward pass (None: not loaded)
    quantization: str | None = None  # MLX weight quantization (q8, q4), None at full precision
    quantization_reason: str | None = None  # why MLX chose it (e.g. the weights fit a quarter of memory)


class Health(msgspec.Struct):
    status: str
    version: str
    uptime_s: float
    models: list[ModelHealth]
    cache: dict | None = None  # the embedding cache: backend (memory, redis, off), ok, error
    memory: Memory | None = None  # this process's resident memory (gateway.serving.memory)


class PublicHealth(msgspec.Struct):
    """What ``/health`` tells a caller without a valid API key when keys are configured."""

    status: str


def model_health(served: ServedModel) -> ModelHealth:
    """One model's load state, engine, device and last batch latency."""
    runner, engine = served.runner, served.engine
    error = served.error or (runner.stats.last_error if runner and runner.stats.failing else None)
    return ModelHealth(
        name=served.name,
        aliases=served.config.aliases,
        state="failing" if runner and runner.stats.failing else served.state,
        engine=served.engine_name,
        device=engine.spec.device if engine else None,
        task=served.config.task,
        load_ms=served.load_ms,
        last_batch_ms=runner.stats.last_batch_ms if runner else None,
        queued_inputs=runner.queued_items if runner else 0,
        dropped_inputs=runner.stats.dropped_items if runner else 0,
        error=error,
        modalities=served_modalities(served),
        dtype=engine.spec.dtype if engine else None,
        quantization=engine.spec.quantization if engine else None,
        quantization_reason=engine.spec.quantization_reason if engine else None,
        outputs=list(engine.spec.outputs) if engine else None,
    )


@get("/health", tags=["Operations"], summary="Liveness and per-model state")
async def health(state: State) -> Health | PublicHealth:
    """Always 200 while the process is up; ``status`` is ``ok`` once every model is ready. With API keys
    configured, the details need a valid key and cover only its models (module docstring)."""
    registry: Registry = state.registry
    status = "ok" if registry.all_ready else "degraded"
    keyed = bool(state.settings.api_keys)
    info = request_context.current()
    if keyed and (info is None or info.api_key is None):
        return PublicHealth(status=status)
    every_model = not keyed or info is None or info.allowed_models is None
    health = Health(
        status=status,
        version=__version__,
        uptime_s=round(time.monotonic() - state.started_monotonic, 3),
        models=[model_health(m) for m in registry.models
                if request_context.visible_names(m.config.served_names)],
        cache=registry.cache_health() if every_model else None,
        memory=process_memory() if every_model else None,
    )
    # + tkr-embed's and embed-rerank's fields (seed_health.py): they describe the default model and the
    # machine, so only for callers that see every model
    return with_seed_fields(health, state) if every_model else health


@get("/ready", tags=["Operations"], summary="Readiness")
async def ready(state: State) -> Response[dict]:
    """200 once every model is loaded and warmed up and no engine is failing, else 503."""
    registry: Registry = state.registry
    ok = registry.all_ready
    return Response({"ready": ok}, status_code=200 if ok else 503)


ROUTES = [health, ready]
