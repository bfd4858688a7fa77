"""Helpers shared by the dialect compat tests (Ollama, Voyage, Jina, Mistral, LiteLLM): raw HTTP, and the
same texts through the OpenAI route, which every dialect's vectors are checked against."""

from __future__ import annotations

import httpx
import numpy as np

from compat_tests.server import RunningServer


def post(server: RunningServer, path: str, body, **headers) -> httpx.Response:
    """POST ``body`` as JSON (a ``bytes`` body is sent as it is, with a JSON content type)."""
    if isinstance(body, bytes):
        headers.setdefault("content-type", "application/json")
        return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=60)
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)


def openai_route(server: RunningServer, texts: list[str], model: str, **fields) -> np.ndarray:
    """``(n, dim)`` float vectors of ``texts`` from ``POST /v1/embeddings`` (plain OpenAI, or ``fields``)."""
    response = post(server, "/v1/embeddings", {"model": model, "input": texts, "encoding_format": "float",
                                               **fields})
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert [row["index"] for row in rows] == list(range(len(texts)))
    return np.array([row["embedding"] for row in rows], dtype=np.float64)


def openai_tokens(server: RunningServer, texts: list[str], model: str) -> int:
    """``usage.prompt_tokens`` of ``texts`` on the OpenAI route."""
    return post(server, "/v1/embeddings", {"model": model, "input": texts}).json()["usage"]["prompt_tokens"]
