"""Readiness while an engine fails, in-process: a real server cannot be made to fail a forward pass on
demand, so a fake engine does, behind the real app (routes, runner, middleware, health)."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import Settings
from gateway.engines import ModelSpec, Tokens
from gateway.http.app import create_app

DIM = 4


class SwitchableEngine:
    """Embeds every text as the same unit vector, or raises while ``failing``."""

    def __init__(self) -> None:
        self.spec = ModelSpec(name="fake", task="embed", max_tokens=32, dim=DIM, engine="fake", device="cpu")
        self.failing = False

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> list[Tokens]:
        return [Tokens(list(range(len(text.split()) + 2))) for text in texts]

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        if self.failing:
            raise RuntimeError("device lost")
        return np.full((len(batch), DIM), 0.5, np.float32)


@pytest.fixture
def app_and_engine(monkeypatch):
    engine = SwitchableEngine()
    monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
    monkeypatch.setattr("gateway.serving.registry.load_engine", lambda config, path, **options: engine)
    return create_app(Settings(model="fake")), engine


def wait_ready(client: TestClient) -> None:
    for _ in range(200):
        if client.get("/ready").status_code == 200:
            return
    raise AssertionError("never ready")


def test_ready_is_503_while_the_engine_fails_and_200_once_it_recovers(app_and_engine):
    app, engine = app_and_engine
    with TestClient(app) as client:
        wait_ready(client)
        engine.failing = True
        response = client.post("/v1/embeddings", json={"model": "fake", "input": "hello"})
        assert response.status_code == 500 and response.json()["error"]["code"] == "engine_error"
        assert "device lost" not in response.text  # the cause is logged, not sent
        assert client.get("/ready").status_code == 503
        model = client.get("/health").json()["models"][0]
        assert model["state"] == "failing" and "device lost" in model["error"]
        assert 'gateway_model_ready{model="fake"} 0.0' in client.get("/metrics").text

        engine.failing = False
        assert client.post("/v1/embeddings", json={"model": "fake", "input": "hello"}).status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/health").json()["models"][0]["state"] == "ready"


def test_two_apps_in_one_process_keep_separate_metrics(app_and_engine):
    first, _ = app_and_engine
    second = create_app(Settings(model="fake"))  # a global prometheus registry would refuse duplicates
    with TestClient(first) as one, TestClient(second) as two:
        wait_ready(one)
        wait_ready(two)
        # two different token sequences (this engine's ids depend only on the word count): the embedding
        # cache folds identical ones into one input
        one.post("/v1/embeddings", json={"model": "fake", "input": ["a", "b c"]})
        assert 'gateway_inputs_total{model="fake",route="/v1/embeddings"} 2.0' in one.get("/metrics").text
        assert "gateway_inputs_total{" not in two.get("/metrics").text
