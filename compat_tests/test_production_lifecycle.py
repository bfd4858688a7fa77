"""Health, readiness and lifecycle through the real server: /health contents, /ready 503 while a model is
loading or failed, warm-up before ready, and a graceful SIGTERM that finishes in-flight requests."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.production import ADMIN_KEY, QUERY, RERANKER, STRICT, bearer
from compat_tests.server import run_server
from gateway import __version__
from gateway.engines import resolve_engine_name


def wait_until(condition: Callable[[], bool], timeout_s: float = 300, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def get_or_none(url: str) -> httpx.Response | None:
    """A GET on a new connection, or None when the connection is refused."""
    try:
        return httpx.get(url, timeout=10)
    except httpx.ConnectError:
        return None


def model_states(url: str) -> set[str] | None:
    """The load states of the server's models, or None while it does not listen yet."""
    response = get_or_none(f"{url}/health")
    return {m["state"] for m in response.json()["models"]} if response else None


def test_health_reports_every_model(production_server):
    first = httpx.get(f"{production_server.url}/health", headers=bearer(ADMIN_KEY)).json()
    time.sleep(0.05)
    health = httpx.get(f"{production_server.url}/health", headers=bearer(ADMIN_KEY)).json()
    assert health["status"] == "ok" and health["version"] == __version__
    assert health["uptime_s"] > first["uptime_s"] > 0
    models = {m["name"]: m for m in health["models"]}
    assert set(models) == {STRICT, QUERY, RERANKER}
    assert models[RERANKER]["task"] == "rerank"
    engine = resolve_engine_name("auto")  # what this machine picks, as the server did
    for model in models.values():
        assert (model["state"], model["engine"], model["error"]) == ("ready", engine, None)
        assert model["device"] in ("cpu", "cuda", "mps", "gpu")
        assert model["last_batch_ms"] > 0 and model["load_ms"] > 0  # warmed up before /ready turned 200
        assert model["queued_inputs"] == 0


@pytest.fixture(scope="module")
def half_broken(tmp_path_factory: pytest.TempPathFactory):
    """A server whose second model cannot load (its folder holds no model)."""
    workdir = tmp_path_factory.mktemp("half-broken")
    (workdir / "broken").mkdir()
    config = workdir / "half-broken.toml"
    config.write_text(f'[[models]]\nname = "good"\nsource = "{DEFAULT_MODEL}"\n\n'
                      f'[[models]]\nname = "broken"\nsource = "{workdir / "broken"}"\n')
    with run_server(workdir, args=["--config", str(config)], wait_ready=False) as running:
        wait_until(lambda: model_states(running.url) == {"ready", "failed"}, what="both models to settle")
        yield running


def test_ready_stays_503_while_a_model_failed_to_load(half_broken):
    for _ in range(3):
        response = httpx.get(f"{half_broken.url}/ready")
        assert response.status_code == 503 and response.json() == {"ready": False}
    health = httpx.get(f"{half_broken.url}/health").json()
    assert health["status"] == "degraded"
    broken = next(m for m in health["models"] if m["name"] == "broken")
    assert broken["state"] == "failed" and broken["error"]


def test_the_other_model_still_serves_and_the_broken_one_answers_503(half_broken):
    url = f"{half_broken.url}/v1/embeddings"
    assert httpx.post(url, json={"model": "good", "input": "hello"}).status_code == 200
    response = httpx.post(url, json={"model": "broken", "input": "hello"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_not_ready"


class NewConnectionProbes:
    """Threads sending ``GET /health`` on a new connection each, until one is refused; every attempt must
    be answered or refused, never accepted and then closed unanswered (``RemoteProtocolError``)."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url, self.failures, self.answered = url, [], 0
        self.refused = threading.Event()
        self.threads = [threading.Thread(target=self._probe, daemon=True) for _ in range(threads)]

    def _probe(self) -> None:
        while not self.refused.is_set():
            try:
                httpx.get(f"{self.url}/health", timeout=30)
                self.answered += 1
            except httpx.ConnectError:
                self.refused.set()
            except httpx.TransportError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> NewConnectionProbes:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refused.set()
        for thread in self.threads:
            thread.join(60)


def wait_for_log(server, text: str, timeout_s: float = 120) -> None:
    wait_until(lambda: text in server.log(), timeout_s=timeout_s, what=f"{text!r} in the server log")


def test_ready_turns_200_after_warm_up_and_sigterm_drains_in_flight_requests(tmp_path: Path):
    # the drain waits as long as the request takes: 2048 texts can take over the default 30 s on a busy
    # 2-core machine, and the test is about the order of events, not about the machine's speed
    with run_server(tmp_path, env={"GATEWAY_SHUTDOWN_TIMEOUT_S": "600"}, wait_ready=False) as server:
        wait_until(lambda: get_or_none(f"{server.url}/ready") is not None, what="the port")
        first = httpx.get(f"{server.url}/ready")
        assert first.status_code == 503  # the model loads after the server starts listening
        wait_until(lambda: httpx.get(f"{server.url}/ready").status_code == 200, what="/ready")
        assert httpx.get(f"{server.url}/health").json()["models"][0]["last_batch_ms"] > 0  # warmed up

        texts = [f"{i}: a sentence that keeps the model busy for a while" for i in range(2048)]
        with ThreadPoolExecutor(1) as pool:
            big = pool.submit(httpx.post, f"{server.url}/v1/embeddings", timeout=600,
                              json={"model": DEFAULT_ALIAS, "input": texts})
            wait_until(lambda: httpx.get(f"{server.url}/health").json()["models"][0]["queued_inputs"] > 0,
                       what="the request to be queued")
            with NewConnectionProbes(server.url) as probes:  # through the moment the listener closes
                server.process.send_signal(signal.SIGTERM)
                assert probes.refused.wait(60), "new connections were still accepted a minute after SIGTERM"
            assert probes.failures == []  # each new connection was answered or refused, none dropped
            response = big.result()
        assert response.status_code == 200
        assert [row["index"] for row in response.json()["data"]] == list(range(2048))
        wait_for_log(server, "Finished server process")
        # no interpreter teardown once the server has finished: 0.06-0.08 s here (with it: 2.3-10 s)
        assert server.process.wait(2) == 0
    log = server.log()
    # SIGTERM came while the request was in flight, and it was answered before the models stopped
    assert log.index("Shutting down") < log.index("POST /v1/embeddings 200") < log.index(
        "Waiting for application shutdown")
