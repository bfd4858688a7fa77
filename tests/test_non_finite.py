"""Non-finite vectors and scores are never returned (issue 22): the request owning a NaN or infinite row
fails with a 500, the batch's other requests get their rows, the event is logged and counted in
``gateway_non_finite_outputs_total``, and nothing of it enters the embedding cache. Fake engines (a real
model cannot be made to overflow on demand)."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import Settings
from gateway.engines import ModelSpec, Tokens
from gateway.errors import EngineFailure
from gateway.http.app import create_app
from gateway.serving.runner import Runner, non_finite_rows

DIM = 4
POISON = 7  # a token id whose row comes back non-finite
BLOCK = 9  # a token id whose batch waits for ``release``


class PoisonEngine:
    """Row i is ``first id + 1`` in every column (so each row names its input), NaN (embed) or +inf
    (score) for an input holding ``POISON``; a batch holding ``BLOCK`` waits for ``release``. Records
    the ids of every batch."""

    def __init__(self, task: str = "embed") -> None:
        self.spec = ModelSpec(name="poison", task=task, max_tokens=64, dim=DIM if task == "embed" else 0,
                              engine="fake", device="cpu")
        self.batches: list[list[list[int]]] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> list[Tokens]:
        return [Tokens([POISON if "poison" in text else len(text) % 5 + 10, 1]) for text in texts]

    def _rows(self, batch: list[Tokens]) -> np.ndarray:
        self.batches.append([t.ids for t in batch])
        if any(BLOCK in t.ids for t in batch):
            self.entered.set()
            assert self.release.wait(30)
        return np.array([t.ids[0] + 1.0 for t in batch], np.float32)

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        rows = np.repeat(self._rows(batch)[:, None], DIM, axis=1)
        rows[[POISON in t.ids for t in batch]] = np.nan
        return rows

    def score(self, batch: list[Tokens]) -> np.ndarray:
        scores = self._rows(batch)
        scores[[POISON in t.ids for t in batch]] = np.inf
        return scores


def test_non_finite_rows_finds_nan_and_infinity_in_any_row_shape():
    vectors = np.ones((4, 3), np.float32)
    vectors[1, 2], vectors[3, 0] = np.nan, -np.inf
    assert non_finite_rows(vectors) == [1, 3]
    assert non_finite_rows(np.array([0.5, np.inf, -2.0], np.float32)) == [1]
    assert non_finite_rows([np.ones((2, 3)), np.full((1, 3), np.nan)]) == [1]  # late chunking's spans
    assert non_finite_rows(np.zeros((2, 3), np.float32)) == []


@pytest.mark.parametrize("kind", ["embed", "score"])
def test_only_the_request_owning_a_non_finite_row_of_a_shared_batch_fails(kind, caplog):
    engine = PoisonEngine("embed" if kind == "embed" else "rerank")
    runner = Runner(engine, batch_tokens=1000)

    async def scenario():
        blocker = asyncio.create_task(runner.run(kind, [Tokens([BLOCK, 1])]))
        assert await asyncio.to_thread(engine.entered.wait, 30)  # the engine is busy: the next two queue
        poisoned = asyncio.create_task(runner.run(kind, [Tokens([3, 1]), Tokens([POISON, 1])]))
        healthy = asyncio.create_task(runner.run(kind, [Tokens([4, 1]), Tokens([5, 1])]))
        await asyncio.sleep(0)  # both tasks queue their inputs in this one loop iteration
        assert runner.queued_items == 4
        engine.release.set()
        return await asyncio.gather(blocker, poisoned, healthy, return_exceptions=True)

    try:
        _, poisoned, healthy = asyncio.run(scenario())
    finally:
        runner.stop()
        runner.join(10)
    assert sorted(map(sorted, engine.batches[1])) == [[1, 3], [1, 4], [1, 5], [1, POISON]]  # one batch
    assert isinstance(poisoned, EngineFailure) and "non-finite" in poisoned.message
    expected = np.array([5.0, 6.0], np.float32)
    assert np.array_equal(healthy, np.repeat(expected[:, None], DIM, 1) if kind == "embed" else expected)
    assert runner.stats.non_finite == 1 and not runner.stats.failing
    assert any("non-finite" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_a_non_finite_vector_is_a_500_counted_in_metrics_and_never_cached(monkeypatch):
    engine = PoisonEngine()
    monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
    monkeypatch.setattr("gateway.serving.registry.load_engine", lambda config, path, **options: engine)
    with TestClient(create_app(Settings(model="poison"))) as client:
        for _ in range(500):
            if client.get("/ready").status_code == 200:
                break
        served = client.app.state.registry.models[0]
        counter = 'gateway_non_finite_outputs_total{model="poison"}'
        assert f"{counter} 0.0" in client.get("/metrics").text

        response = client.post("/v1/embeddings", json={"model": "poison", "input": ["fine", "poison"]})
        assert response.status_code == 500 and response.json()["error"]["code"] == "engine_error"
        assert "non-finite" in response.json()["error"]["message"] and response.headers["x-request-id"]
        assert f"{counter} 1.0" in client.get("/metrics").text
        assert served.cache.stats.bytes == 0  # neither the NaN row nor the failed request's good one

        good = client.post("/v1/embeddings", json={"model": "poison", "input": ["fine"]})
        assert good.status_code == 200 and all(np.isfinite(good.json()["data"][0]["embedding"]))
        calls = len(engine.batches)
        again = client.post("/v1/embeddings", json={"model": "poison", "input": "poison"})
        assert again.status_code == 500 and len(engine.batches) == calls + 1  # not served from a cache
        assert f"{counter} 2.0" in client.get("/metrics").text
        assert client.get("/ready").status_code == 200  # bad output for some inputs: the model still serves
