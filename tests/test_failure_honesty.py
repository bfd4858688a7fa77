"""Failures are clean and honest (issue 22), in-process behind the real app with fake engines (a real model
cannot be made to fail on demand): a model that fails warm-up gives back its threads and engine and
``/health`` names the cause; only ``UnprocessableInput`` is the client's fault (400), any other engine
exception is a 500 with a request id and a logged traceback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import threading
import weakref

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import Settings
from gateway.engines import ModelSpec, Tokens
from gateway.errors import UnprocessableInput
from gateway.http.app import create_app
from gateway.serving.registry import Registry

DIM = 4


class FakeEngine:
    """Embeds every text as the same vector. ``embed_error`` / ``tokenize_error``: raised by those calls
    (an exception instance, or None to work)."""

    def __init__(self, embed_error: Exception | None = None, tokenize_error: Exception | None = None) -> None:
        self.spec = ModelSpec(name="fake", task="embed", max_tokens=32, dim=DIM, engine="fake", device="cpu")
        self.embed_error, self.tokenize_error = embed_error, tokenize_error
        self.weights = np.ones(1 << 20, np.float32)  # stands for the model's memory

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> list[Tokens]:
        if self.tokenize_error is not None:
            raise self.tokenize_error
        return [Tokens(list(range(len(text.split()) + 2))) for text in texts]

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        if self.embed_error is not None:
            raise self.embed_error
        return np.full((len(batch), DIM), 0.5, np.float32)


@contextlib.contextmanager
def server_logging():
    """The gateway's log as a server writes it: each record formatted once and dropped. Entered in the
    test's body: pytest attaches its capture handlers, which keep every record and with it the frames of
    a logged traceback (engine included), to the non-propagating loggers when the test's call begins."""
    logger = logging.getLogger("gateway")
    stream, handler = io.StringIO(), logging.StreamHandler()
    handler.setStream(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    saved = logger.propagate, logger.level, logger.handlers
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    yield stream
    logger.propagate, logger.level, logger.handlers = saved


def use_engines(monkeypatch, make_engine) -> list[weakref.ref]:
    """Every model load builds ``make_engine()``; returns weak references to the engines built."""
    built: list[weakref.ref] = []

    def load(config, path, **options):
        engine = make_engine()
        built.append(weakref.ref(engine))
        return engine

    monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
    monkeypatch.setattr("gateway.serving.registry.load_engine", load)
    return built


def new_runner_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Live runner threads of the fake model started since ``before`` (earlier tests' runners may still
    be winding down: a closed app stops its runners without waiting for them)."""
    return [t for t in threading.enumerate()
            if t.name.startswith("runner:fake:") and t.is_alive() and t not in before]


def test_a_model_that_fails_warm_up_frees_its_threads_and_engine_and_keeps_the_cause(monkeypatch):
    built = use_engines(monkeypatch, lambda: FakeEngine(embed_error=RuntimeError("CUDA out of memory")))
    registry = Registry(Settings(model="fake"))
    before = set(threading.enumerate())

    with server_logging() as log:
        asyncio.run(registry.load_all())

    served = registry.models[0]
    assert served.state == "failed"
    assert served.error == "warm-up failed: RuntimeError: CUDA out of memory"
    assert served.engine is None and served.runner is None
    assert [t for t in threading.enumerate() if t not in before] == []  # runner and tokenizer threads
    gc.collect()
    assert len(built) == 1 and built[0]() is None  # nothing holds the engine (its weights) any more
    logged = log.getvalue()
    assert "model fake failed at warm-up" in logged and "RuntimeError: CUDA out of memory" in logged


def test_a_failed_model_is_retried_with_a_working_tokenizer_thread(monkeypatch):
    engines = iter([FakeEngine(embed_error=RuntimeError("transient")), FakeEngine()])
    use_engines(monkeypatch, lambda: next(engines))
    registry = Registry(Settings(model="fake"))

    async def load_twice() -> None:
        await registry.load_all()
        assert registry.models[0].state == "failed"
        await registry.load_all()  # load_all retries what is not ready
        await registry.close()

    asyncio.run(load_twice())
    assert registry.models[0].state == "ready"


def test_health_names_the_cause_of_a_failed_warm_up(monkeypatch):
    use_engines(monkeypatch, lambda: FakeEngine(embed_error=RuntimeError("device lost in warm-up")))
    before = set(threading.enumerate())
    with TestClient(create_app(Settings(model="fake"))) as client:
        for _ in range(500):
            model = client.get("/health").json()["models"][0]
            if model["state"] != "loading":
                break
        assert model["state"] == "failed"
        assert model["error"] == "warm-up failed: RuntimeError: device lost in warm-up"
        assert client.get("/ready").status_code == 503
        assert new_runner_threads(before) == []


@pytest.fixture
def client_for(monkeypatch):
    """A started app serving one ``FakeEngine``, ready, then raising ``errors`` (its attributes)."""
    clients = []

    def start(**errors) -> TestClient:
        engine = FakeEngine()
        monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
        monkeypatch.setattr("gateway.serving.registry.load_engine", lambda config, path, **options: engine)
        client = TestClient(create_app(Settings(model="fake")))
        clients.append(client.__enter__())
        for _ in range(500):
            if client.get("/ready").status_code == 200:
                vars(engine).update(errors)
                return client
        raise AssertionError("never ready")

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_a_value_error_from_an_engine_is_a_500_with_a_request_id_and_a_logged_traceback(client_for, caplog):
    client = client_for(tokenize_error=ValueError("a bug in the tokenizer glue"))
    response = client.post("/v1/embeddings", json={"model": "fake", "input": "hello there"},
                           headers={"X-Request-ID": "req-valueerror-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-valueerror-1"
    error = response.json()["error"]
    assert error["type"] == "api_error" and "req-valueerror-1" in error["message"]
    assert "tokenizer glue" not in response.text  # the cause is logged, not sent
    logged = [r for r in caplog.records if r.exc_info and "tokenizer glue" in str(r.exc_info[1])]
    assert logged and logged[0].levelno == logging.ERROR


def test_a_value_error_in_a_forward_pass_is_a_500_not_a_400(client_for):
    client = client_for(embed_error=ValueError("shapes do not match"))
    response = client.post("/v1/embeddings", json={"model": "fake", "input": "hello there"},
                           headers={"X-Request-ID": "req-forward-1"})
    assert response.status_code == 500 and response.json()["error"]["code"] == "engine_error"
    assert response.headers["x-request-id"] == "req-forward-1"
    assert response.json()["error"]["message"] == ("the model failed to process this request; it was not "
                                                   "retried (request id req-forward-1).")


def test_unprocessable_input_is_a_400_in_the_routes_shape(client_for):
    refusal = UnprocessableInput("input 0: the text holds a token reserved for images")
    client = client_for(tokenize_error=refusal)
    openai = client.post("/v1/embeddings", json={"model": "fake", "input": "look"})
    assert openai.status_code == 400
    assert openai.json()["error"] == {
        "message": "'input': input 0: the text holds a token reserved for images",
        "type": "invalid_request_error", "param": "input", "code": None,
    }
    cohere = client.post("/v1/embed", json={"model": "fake", "texts": ["look"], "input_type": "search_query"})
    assert cohere.status_code == 400
    assert cohere.json() == {"message": "'texts': input 0: the text holds a token reserved for images"}
