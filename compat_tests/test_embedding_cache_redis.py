"""The Redis embedding cache (``cache_redis_url``) against a real ``redis-server`` the test starts: two
gateways share it, and one keeps serving without it while Redis is down, saying so in ``/health``."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.server import RunningServer, run_server
from gateway.bench.server import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(),
                                reason="redis-server is not installed (apt-get install redis-server)")


class RedisProcess:
    """A throwaway ``redis-server`` on a loopback port: no persistence, stopped by its pid."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def gateway(workdir: Path, redis: RedisProcess):
    env = {"GATEWAY_CACHE_REDIS_URL": redis.url, "GATEWAY_CACHE_REDIS_RETRY_S": "0.5"}
    return run_server(workdir, env=env, args=["--model", DEFAULT_MODEL])


@pytest.fixture(scope="module")
def replicas(redis, tmp_path_factory) -> tuple[RunningServer, RunningServer]:
    with gateway(tmp_path_factory.mktemp("one"), redis) as one, gateway(tmp_path_factory.mktemp("two"),
                                                                         redis) as two:
        yield one, two


def embed(server: RunningServer, inputs: list[str]) -> httpx.Response:
    response = httpx.post(f"{server.url}/v1/embeddings", json={"model": DEFAULT_MODEL, "input": inputs},
                          timeout=60)
    assert response.status_code == 200, response.text
    return response


def without_id(body: bytes) -> bytes:
    return re.sub(rb'"id":"[^"]*"', b'"id":""', body)


def cache_health(server: RunningServer) -> dict:
    return httpx.get(f"{server.url}/health", timeout=30).json()["cache"]


def test_a_second_gateway_serves_what_the_first_embedded(replicas):
    one, two = replicas
    inputs = ["shared cache: first chunk", "shared cache: second chunk", "shared cache: third chunk"]
    first = embed(one, inputs)
    assert first.headers["x-cache-hits"] == "0"
    second = embed(two, inputs)
    assert second.headers["x-cache-hits"] == "3"
    assert without_id(second.content) == without_id(first.content)
    assert cache_health(one) == cache_health(two) == {"backend": "redis", "ok": True, "error": None}


def test_a_gateway_started_without_redis_serves_and_says_so(tmp_path):
    absent = RedisProcess(tmp_path)  # a free port nobody listens on
    with gateway(tmp_path, absent) as alone:
        health = cache_health(alone)
        assert health["backend"] == "redis" and health["ok"] is False and health["error"]
        response = embed(alone, ["no redis at all"])
        assert response.headers["x-cache-hits"] == "0"


def test_the_gateway_serves_without_redis_and_says_so_until_it_is_back(replicas, redis):
    one, _ = replicas
    inputs = ["redis down: a chunk", "redis down: another chunk"]
    cached = embed(one, inputs)
    assert embed(one, inputs).headers["x-cache-hits"] == "2"
    redis.stop()
    for _ in range(3):  # the first call finds Redis gone, the next ones skip it for the retry period
        down = embed(one, inputs)
        assert down.headers["x-cache-hits"] == "0"
        assert without_id(down.content) == without_id(cached.content)
    health = cache_health(one)
    assert health["backend"] == "redis" and health["ok"] is False and health["error"]
    assert httpx.get(f"{one.url}/ready", timeout=30).status_code == 200  # the models still serve

    redis.start()  # an empty Redis on the same port: used again once the retry period has passed
    for _ in range(100):
        if embed(one, inputs) and cache_health(one)["ok"]:
            break
        time.sleep(0.1)
    assert cache_health(one)["ok"] is True
    assert embed(one, inputs).headers["x-cache-hits"] == "2"
