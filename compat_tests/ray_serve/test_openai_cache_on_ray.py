"""The embedding cache on Ray Serve: it lives in the HTTP ingress (the service layer tokenizes there), so
the second request for the same texts never reaches a model replica and answers the same bytes."""

from __future__ import annotations

import re

import httpx

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.ray_serve.replicas import wait_for


def embed(url: str, texts: list[str]) -> httpx.Response:
    response = httpx.post(f"{url}/v1/embeddings", json={"model": DEFAULT_MODEL, "input": texts,
                                                        "encoding_format": "base64"}, timeout=120)
    assert response.status_code == 200, response.text
    return response


def test_the_ingress_serves_repeated_texts_from_its_cache(server):
    wait_for(lambda: httpx.get(f"{server.url}/ready", timeout=30).status_code == 200, 240, "/ready 200")
    texts = [f"cached on ray {i}: a chunk re-indexed twice" for i in range(8)]
    first, again = embed(server.url, texts), embed(server.url, texts)
    assert first.headers["x-cache-hits"] == "0" and again.headers["x-cache-hits"] == str(len(texts))
    assert re.sub(rb'"id":"[^"]*"', b"", again.content) == re.sub(rb'"id":"[^"]*"', b"", first.content)
    assert httpx.get(f"{server.url}/health", timeout=30).json()["cache"]["backend"] == "memory"
