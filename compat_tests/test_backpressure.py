"""Backpressure and dropped work through the real server: a full queue answers 429 with Retry-After in
the OpenAI shape, and the inputs of a client that hung up never reach the engine.

One server with a small queue (4000 tokens): a 256-text request (about 24k tokens) is still admitted into
an empty queue, and while it waits any further bulk request overflows it (a request of at most 1% of the
queue, a query, is still admitted: ``gateway.serving.admission``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlparse

import httpx
import openai
import pytest

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.server import RunningServer, run_server

BIG_INPUT = [f"{i} " + "the quick brown fox jumps over the lazy dog " * 10 for i in range(256)]  # ~95 tokens
MORE = [f"one more text, number {i}" for i in range(16)]  # ~130 tokens: more than 1% of the queue


@pytest.fixture(scope="module")
def small_queue_server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    env = {"GATEWAY_MAX_QUEUE_TOKENS": "4000", "GATEWAY_BATCH_TOKENS": "2048"}  # ~21 inputs per batch
    with run_server(tmp_path_factory.mktemp("small-queue"), env=env) as running:
        yield running


def model_health(server: RunningServer) -> dict:
    return httpx.get(f"{server.url}/health", timeout=10).json()["models"][0]


def wait_for(server: RunningServer, condition, timeout_s: float = 60) -> dict:
    """Poll /health until ``condition(model_health)`` holds; returns that health record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = model_health(server)
        if condition(health):
            return health
        time.sleep(0.02)
    raise AssertionError(f"/health never satisfied the condition: {model_health(server)}")


def test_full_queue_answers_429_with_retry_after_in_openai_shape(small_queue_server: RunningServer) -> None:
    url = f"{small_queue_server.url}/v1/embeddings"
    big: dict = {}
    sender = threading.Thread(target=lambda: big.update(
        response=httpx.post(url, json={"model": DEFAULT_MODEL, "input": BIG_INPUT}, timeout=600)))
    sender.start()
    wait_for(small_queue_server, lambda h: h["queued_inputs"] > 0)

    refused = httpx.post(url, json={"model": DEFAULT_MODEL, "input": MORE}, timeout=60)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "server_overloaded"
    client = openai.OpenAI(base_url=small_queue_server.openai_base, api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError):  # the class the SDK retries, honouring Retry-After
        client.embeddings.create(model=DEFAULT_MODEL, input=MORE)
    query = client.embeddings.create(model=DEFAULT_MODEL, input="a query is still served meanwhile")
    assert len(query.data[0].embedding) == 384  # a query is not locked out by the bulk work

    sender.join(600)
    assert big["response"].status_code == 200 and len(big["response"].json()["data"]) == 256
    wait_for(small_queue_server, lambda h: h["queued_inputs"] == 0)
    assert client.embeddings.create(model=DEFAULT_MODEL, input="served again").data[0].embedding


def test_inputs_of_a_client_that_hung_up_never_reach_the_engine(small_queue_server: RunningServer) -> None:
    before = wait_for(small_queue_server, lambda h: h["queued_inputs"] == 0)["dropped_inputs"]
    # not the texts the test above embedded: the embedding cache would answer them without queueing
    texts = [f"hung up: {text}" for text in BIG_INPUT]
    body = json.dumps({"model": DEFAULT_MODEL, "input": texts}).encode()
    address = urlparse(small_queue_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_for(small_queue_server, lambda h: h["queued_inputs"] > 0)
    # hung up while most of the 256 inputs were queued: they are released at once, not computed
    health = wait_for(small_queue_server, lambda h: h["queued_inputs"] == 0, timeout_s=30)
    dropped = health["dropped_inputs"] - before
    assert dropped >= 150, health
    response = httpx.post(f"{small_queue_server.url}/v1/embeddings",
                          json={"model": DEFAULT_MODEL, "input": "still serving"}, timeout=60)
    assert response.status_code == 200
