"""Models loaded on demand, unloaded after their keep_alive, evicted to fit model_memory_budget
(``gateway.serving.lifecycle``), with the real default model (served twice under two names where two
models are needed). Waits are on state, bounded; never fixed sleeps."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
import pytest

from gateway.config import DEFAULT_MODEL, ModelConfig, Settings
from gateway.engines.sources import embedded_model_dir
from gateway.http.app import create_app
from gateway.serving import request_context
from gateway.serving.weights_size import weights_bytes

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serve(app) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` on this event loop (its registry's tasks and events live here too), with the
    app's start-up and shutdown around it."""
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                 base_url="http://gateway", timeout=300) as client:
        yield client


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


async def embed(client: httpx.AsyncClient, name: str, text: str = "hello", headers: dict | None = None):
    return await client.post("/v1/embeddings", json={"model": name, "input": text}, headers=headers)


async def test_an_on_demand_model_loads_once_for_concurrent_requests_and_ready_ignores_it() -> None:
    app = create_app(settings(model("base"), model("lazy", load="on_demand")))
    registry = app.state.registry
    async with serve(app) as client:
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


async def test_keep_alive_zero_unloads_after_the_request_and_frees_threads_engine_and_cache(caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.lifecycle")
    app = create_app(settings(model("base"), model("brief", load="on_demand", keep_alive=0)))
    registry = app.state.registry
    async with serve(app) as client:
        await until(lambda: registry.models[0].state == "ready", "the start-up model")
        assert (await embed(client, "brief")).status_code == 200
        brief = registry.get("brief")
        # its runner threads and tokenizer thread (it stays at least LOAD_GRACE_S: still loaded here)
        threads = [*brief.runner._threads, brief.tokenizer_thread._thread]
        assert all(t is not None and t.is_alive() for t in threads)
        await until(lambda: brief.state == "unloaded", "the keep_alive 0 unload")
        assert brief.engine is None and brief.runner is None
        assert brief.cache is None or brief.cache.stats.bytes == 0
        await until(lambda: not any(t.is_alive() for t in threads), "the model's threads to exit", 30)
        assert registry.events.counts[("unload", "brief", "keep_alive")] == 1
        assert (await embed(client, "brief")).status_code == 200  # and it loads again
        assert registry.events.counts[("load", "brief", "")] == 2
        metrics = (await client.get("/metrics")).text
        assert 'gateway_model_loads_total{model="brief"} 2.0' in metrics
        assert 'gateway_model_unloads_total{model="brief",reason="keep_alive"} 1.0' in metrics
        assert 'gateway_model_resident_bytes{model="brief"}' in metrics
        events = [(r.fields["event"], r.fields.get("reason")) for r in caplog.records
                  if r.name == "gateway.lifecycle" and r.fields["model"] == "brief"]
        assert events == [("loaded", None), ("unloaded", "keep_alive"), ("loaded", None)]
        health = {m["name"]: m for m in (await client.get("/health")).json()["models"]}
        assert health["brief"]["load"] == "on_demand" and health["brief"]["bytes"] == brief.weights_bytes


async def hold_until(registry, name: str, release: asyncio.Event, held: asyncio.Event) -> None:
    """Use ``name`` inside a request of its own (as a route does) until ``release`` is set."""
    info = request_context.start("holder")
    try:
        await registry.use(name)
        held.set()
        await release.wait()
    finally:
        request_context.finish(info)


async def test_the_budget_evicts_the_least_recently_used_idle_model_and_refuses_when_all_are_busy() -> None:
    size = weights_bytes(embedded_model_dir())
    app = create_app(settings(model("a", load="on_demand"), model("b", load="on_demand"),
                              model("c", load="on_demand"), model_memory_budget=int(2.5 * size)))
    registry = app.state.registry
    a, b, c = (registry.get(name) for name in "abc")
    async with serve(app) as client:
        assert (await client.get("/ready")).status_code == 200  # nothing to load at start
        for name in ("a", "b"):
            assert (await embed(client, name)).status_code == 200
        assert (await embed(client, "a")).status_code == 200  # a is now used more recently than b
        assert (await embed(client, "c")).status_code == 200  # no room for three: b (LRU) goes
        assert (a.state, b.state, c.state) == ("ready", "unloaded", "ready")
        assert registry.events.counts[("unload", "b", "memory_budget")] == 1
        metrics = (await client.get("/metrics")).text
        assert 'gateway_model_evictions_total{model="b",reason="lru_idle"} 1.0' in metrics

        # a and c both held by requests in flight: b cannot be loaded, in the route's own error shape
        release, held = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
        holders = [asyncio.ensure_future(hold_until(registry, name, release, event))
                   for name, event in zip("ac", held, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(h.wait() for h in held)), 60)
        refused = await embed(client, "b")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert "model_memory_budget" in refused.json()["error"]["message"]
        ollama = await client.post("/api/embed", json={"model": "b", "input": "x"})
        assert ollama.status_code == 503 and "model_memory_budget" in ollama.json()["error"]
        assert b.state == "unloaded" and a.state == c.state == "ready"
        release.set()
        await asyncio.gather(*holders)
        assert (await embed(client, "b")).status_code == 200  # idle again: the LRU of a and c goes
        assert b.state == "ready" and [a.state, c.state].count("unloaded") == 1


async def test_a_pinned_model_is_never_evicted() -> None:
    size = weights_bytes(embedded_model_dir())
    app = create_app(settings(model("pinned", pinned=True), model("other", load="on_demand"),
                              model_memory_budget=int(1.5 * size)))
    registry = app.state.registry
    async with serve(app) as client:
        await until(lambda: registry.get("pinned").state == "ready", "the start-up model")
        refused = await embed(client, "other")
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert registry.get("pinned").state == "ready" and registry.get("other").state == "unloaded"


async def test_ollama_keep_alive_sets_the_expiry_shown_by_api_ps_and_zero_unloads() -> None:
    app = create_app(settings(model("base")))
    registry = app.state.registry
    served = registry.get("base")
    async with serve(app) as client:
        await until(lambda: served.state == "ready", "the start-up model")
        ps = (await client.get("/api/ps")).json()["models"]
        assert [m["expires_at"] for m in ps] == ["9999-12-31T23:59:59Z"]  # forever by default
        answer = await client.post("/api/embed", json={"model": "base", "input": "x", "keep_alive": "1h"})
        assert answer.status_code == 200
        (entry,) = (await client.get("/api/ps")).json()["models"]
        expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00")).timestamp()
        assert abs(expires - (time.time() + 3600)) < 120 and entry["size"] > 0
        bad = await client.post("/api/embed", json={"model": "base", "input": "x", "keep_alive": "soon"})
        assert bad.status_code == 400 and "keep_alive" in bad.json()["error"]
        # Ollama's way to unload a model: an empty input with keep_alive 0
        assert (await client.post("/api/embed", json={"model": "base", "keep_alive": 0})).status_code == 200
        await until(lambda: served.state == "unloaded", "the keep_alive 0 unload")
        assert (await client.get("/api/ps")).json()["models"] == []
        legacy = await client.post("/api/embeddings", json={"model": "base", "prompt": "x", "keep_alive": -1})
        assert legacy.status_code == 200 and len(legacy.json()["embedding"]) == 384
        (entry,) = (await client.get("/api/ps")).json()["models"]
        assert entry["expires_at"] == "9999-12-31T23:59:59Z"  # negative: forever
