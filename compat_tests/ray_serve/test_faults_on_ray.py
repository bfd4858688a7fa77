"""Faults and scaling of the gateway on Ray Serve, on the two-node test cluster: a killed model replica,
a client that leaves, one to two replicas under traffic, and replicas on both nodes serving."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.ray_serve.replicas import (
    is_ready,
    model_handle,
    replica_stats,
    running_replicas,
    scale_to,
    wait_for,
)

LONG_TEXTS = [f"text {i} for the queue: " + "a sentence that takes a few tokens to embed. " * 12
              for i in range(512)]


def embed(url: str, texts: list[str], timeout_s: float = 300) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"model": DEFAULT_MODEL, "input": texts,
                                                    "encoding_format": "float"}, timeout=timeout_s)


def rerank(url: str, documents: list[str]) -> httpx.Response:
    return httpx.post(f"{url}/v1/rerank", json={"model": DEFAULT_MODEL, "query": "which text?",
                                                "documents": documents}, timeout=300)


def queued_in_replica(at_least: int = 1) -> bool:
    return model_handle().stats.remote().result(timeout_s=30)["queued_items"] >= at_least


def test_a_killed_replica_fails_only_its_requests_and_ray_restarts_it(server, reference_model):
    if running_replicas() != 1:
        scale_to(server.settings, 1, server.url)
    (victim,) = replica_stats(5).values()
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(embed, server.url, LONG_TEXTS), pool.submit(rerank, server.url, LONG_TEXTS[:300])]
        # more inputs queued than either request holds: both wait in the replica (requests not yet sent
        # to it would rather wait in Serve's router for the restarted one)
        wait_for(lambda: queued_in_replica(700), 60, "both requests queued in the replica")
        os.kill(victim["pid"], signal.SIGKILL)
        openai_error, cohere_error = (future.result() for future in held)
    for response in (openai_error, cohere_error):  # held by the dead replica: 503 in the route's shape
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
    assert openai_error.json()["error"]["code"] == "model_unavailable"
    assert "replica" in cohere_error.json()["message"]

    wait_for(lambda: is_ready(server.url) == 503, 60, "/ready 503 while no replica runs")
    meanwhile = embed(server.url, ["sent while the replica restarts"])
    assert meanwhile.status_code in (200, 503), meanwhile.text  # never a bare 500
    if meanwhile.status_code == 503:
        assert "retry-after" in meanwhile.headers and "error" in meanwhile.json()
    wait_for(lambda: is_ready(server.url) == 200, 240, "/ready 200 after Ray restarted the replica")

    (restarted,) = replica_stats(5).values()
    assert restarted["pid"] != victim["pid"]
    after = embed(server.url, ["hello world"])
    assert after.status_code == 200
    vector = np.array(after.json()["data"][0]["embedding"])
    expected = reference_model.encode(["hello world"])[0]
    assert vector @ expected / np.linalg.norm(vector) / np.linalg.norm(expected) >= 0.9999


def test_a_client_disconnect_drops_its_queued_inputs_in_the_replica(server):
    wait_for(lambda: is_ready(server.url) == 200, 240, "/ready 200")
    before = sum(stats["dropped_items"] for stats in replica_stats(10).values())
    with ThreadPoolExecutor(1) as pool:
        # texts no other test sent: the ingress's embedding cache would answer those without the replica
        blocker = pool.submit(embed, server.url, [f"blocker {text}" for text in LONG_TEXTS])
        wait_for(queued_in_replica, 60, "inputs queued in the replica")
        # more work than the blocker's: shortest-remaining-first runs it after the blocker, so it is still
        # queued when its client gives up and closes its connection
        left_behind = [f"left behind {text}" for text in LONG_TEXTS + LONG_TEXTS[:64]]
        with pytest.raises(httpx.TimeoutException):
            embed(server.url, left_behind, timeout_s=1.0)
        wait_for(lambda: sum(s["dropped_items"] for s in replica_stats(5).values()) > before, 60,
                 "the replica to drop the inputs of the request whose client left")
        assert blocker.result().status_code == 200


def test_scaling_from_one_to_two_replicas_under_traffic_loses_no_request(server):
    if running_replicas() != 1:
        scale_to(server.settings, 1, server.url)
    (first,) = replica_stats(5).values()
    statuses: list[int] = []
    stop = threading.Event()

    def traffic(worker: int) -> None:
        with httpx.Client(timeout=120) as client:
            for i in range(10_000):  # bounded; ``stop`` ends it first
                if stop.is_set():
                    return
                response = client.post(f"{server.url}/v1/embeddings",
                                       json={"model": DEFAULT_MODEL, "input": [f"scaling {worker}.{i}"]})
                statuses.append(response.status_code)

    threads = [threading.Thread(target=traffic, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(statuses) >= 20, 60, "traffic to start")
        scale_to(server.settings, 2, server.url)
        sent = len(statuses)
        wait_for(lambda: len(statuses) >= sent + 40, 60, "traffic after scaling")
    finally:
        stop.set()
        for thread in threads:
            thread.join(150)
    assert len(statuses) > 60 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    # rescaled in place: the first replica kept running (Serve's router may send one burst of stats
    # calls all to the new replica, so ask until the first one answers; a replaced replica never would)
    wait_for(lambda: first["replica"] in replica_stats(20), 30, "the first replica to answer")


def test_two_replicas_run_on_both_nodes_and_both_serve(server):
    if running_replicas() != 2:
        scale_to(server.settings, 2, server.url)
    before: dict[str, dict] = {}

    def both_answered() -> bool:  # Serve's router may send a whole burst of stats calls to one replica
        before.update(replica_stats(40))
        return len(before) == 2

    wait_for(both_answered, 30, "both replicas to answer a stats burst")
    assert len(before) == 2
    assert len({stats["node"] for stats in before.values()}) == 2, "Serve spreads replicas across nodes"
    with ThreadPoolExecutor(8) as pool:
        # distinct inputs (the embedding cache would fold repeats into one) long enough that requests
        # overlap in the replicas, so Serve's router sees queues and uses both
        requests = [[f"spread {i}.{j} " + LONG_TEXTS[j] for j in range(8)] for i in range(64)]
        answers = list(pool.map(lambda texts: embed(server.url, texts).status_code, requests))
    assert set(answers) == {200}
    after = replica_stats(40)
    assert all(after[replica]["items"] > before[replica]["items"] for replica in before), (before, after)
