"""The ``gateway bench`` loads for locust users (locust is not a dependency: ``pip install locust``).

    locust -f gateway/bench/locustfile.py --host http://127.0.0.1:8000 \\
        --headless --users 32 --spawn-rate 32 --run-time 60s ShortTextUser

User classes, one per load (name them on the command line, or pick them in the web UI):
``ShortTextUser`` (one short text per request, float and base64), ``BatchUser`` (256 mixed-length
texts per request) and ``RerankUser`` (Cohere ``/v1/rerank``, one query with 20 or 100 documents).
Set ``GATEWAY_BENCH_MODEL`` to the served model name (default: the embedded all-MiniLM-L6-v2).
Bodies are built once from the same stdlib-docstring corpus as ``gateway bench``.
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, task

from gateway.bench.corpus import load_corpus
from gateway.bench.loads import BATCH_TEXTS, embedding_bodies, rerank_bodies
from gateway.config import DEFAULT_MODEL

MODEL = os.environ.get("GATEWAY_BENCH_MODEL", DEFAULT_MODEL)
CORPUS = load_corpus()
DOCUMENTS = [text for text in CORPUS.mixed if len(text) < 800]  # about the model's 256-token limit
HEADERS = {"content-type": "application/json"}


class _GatewayUser(FastHttpUser):
    """Sends pre-encoded bodies back to back (no think time: a closed loop, like ``gateway bench``)."""

    abstract = True
    wait_time = constant(0)

    def post(self, path: str, bodies: itertools.cycle, name: str) -> None:
        with self.client.post(path, data=next(bodies), headers=HEADERS, name=name,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")


class ShortTextUser(_GatewayUser):
    """Load 1: one short text per request, OpenAI ``/v1/embeddings``."""

    base64 = itertools.cycle(embedding_bodies(CORPUS.short, 1, MODEL, "base64", 512))
    floats = itertools.cycle(embedding_bodies(CORPUS.short, 1, MODEL, "float", 512))

    @task
    def one_text_base64(self) -> None:
        self.post("/v1/embeddings", self.base64, "1 text, base64")

    @task
    def one_text_float(self) -> None:
        self.post("/v1/embeddings", self.floats, "1 text, float")


class BatchUser(_GatewayUser):
    """Load 2: 256 mixed-length texts per request."""

    bodies = itertools.cycle(embedding_bodies(CORPUS.mixed, BATCH_TEXTS, MODEL, "base64", 32))

    @task
    def many_texts(self) -> None:
        self.post("/v1/embeddings", self.bodies, f"{BATCH_TEXTS} texts, base64")


class RerankUser(_GatewayUser):
    """Load 3: Cohere ``/v1/rerank`` of one query with 20 or 100 documents."""

    twenty = itertools.cycle(rerank_bodies(CORPUS, DOCUMENTS, 20, MODEL, 128))
    hundred = itertools.cycle(rerank_bodies(CORPUS, DOCUMENTS, 100, MODEL, 128))

    @task
    def rerank_20(self) -> None:
        self.post("/v1/rerank", self.twenty, "rerank 1+20 docs")

    @task
    def rerank_100(self) -> None:
        self.post("/v1/rerank", self.hundred, "rerank 1+100 docs")
