"""Models loaded on demand, unloaded after their keep_alive, evicted to fit model_memory_budget
(``gateway.serving.lifecycle``), with the real default model (served twice under two names where two
models are needed). Waits are on state, bounded; never fixed sleeps."""

from __future__ import annotations

import asyncio
import threading

import pytest
from litestar.testing import AsyncTestClient

from gateway.config import DEFAULT_MODEL, ModelConfig, Settings
from gateway.engines.sources import embedded_model_dir
from gateway.http.app import create_app
from gateway.serving.weights_size import weights_bytes

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def model(name: str, **fields) -> ModelConfig:
    return ModelConfig(name=name, source=DEFAULT_MODEL, **fields)


def settings(*models: ModelConfig, **fields) -> Settings:
    return Settings(_env_file=None, models=list(models), **fields)


async def until(condition, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` on the event loop until it holds (bounded: fail after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def embed(client: AsyncTestClient, name: str, text: str = "hello"):
    return await client.post("/v1/embeddings", json={"model": name, "input": text})


def runner_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


async def test_an_on_demand_model_loads_once_for_concurrent_requests_and_ready_ignores_it() -> None:
    app = create_app(settings(model("base"), model("lazy", load="on_demand")))
    registry = app.state.registry
    async with AsyncTestClient(app) as client:
        await until(lambda: registry.models[0].state == "ready", "the start-up model")
        assert (await client.get("/ready")).status_code == 200
        lazy = registry.get("lazy")
        assert lazy.state == "unloaded" and lazy.engine is None
        answers = await asyncio.gather(*(embed(client, "lazy", f"text {i}") for i in range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        assert registry.events.counts[("load", "lazy", "")] == 1
        assert lazy.state == "ready" and lazy.weights_bytes == weights_bytes(embedded_model_dir())
        # the same vectors as the start-up model: it is the same model
        same = (await embed(client, "base", "text 0")).json()["data"][0]["embedding"]
        assert same == pytest.approx(answers[0].json()["data"][0]["embedding"], abs=1e-5)


async def test_keep_alive_zero_unloads_after_the_request_and_frees_threads_engine_and_cache() -> None:
    app = create_app(settings(model("base"), model("brief", load="on_demand", keep_alive=0)))
    registry = app.state.registry
    async with AsyncTestClient(app) as client:
        await until(lambda: registry.models[0].state == "ready", "the start-up model")
        before = runner_threads()
        assert (await embed(client, "brief")).status_code == 200
        brief = registry.get("brief")
        await until(lambda: brief.state == "unloaded", "the keep_alive 0 unload")
        assert brief.engine is None and brief.runner is None
        assert brief.cache is None or brief.cache.stats.bytes == 0
        await until(lambda: runner_threads() <= before, "the model's threads to exit", 30)
        assert registry.events.counts[("unload", "brief", "keep_alive")] == 1
        assert (await embed(client, "brief")).status_code == 200  # and it loads again
        assert registry.events.counts[("load", "brief", "")] == 2
