"""The embedding cache holds ragged outputs too (issue 23): a sparse or multi-vector request sent twice is
answered from the cache the second time (``x-cache-hits``), with the same rows; the key names the output
kind and the side (an inference-free SPLADE's query and document rows differ and are cached apart)."""

from __future__ import annotations

import asyncio

import pytest
from litestar.testing import TestClient

from gateway.config import ModelConfig, Settings
from gateway.http.app import create_app
from gateway.serving.registry import Registry
from tests.tiny_retrieval import build_tiny_bge_m3, build_tiny_colbert, build_tiny_inference_free_splade

TEXTS = ["hello world", "cached twice", "a third text"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ragged-cache")
    folders = {"free": build_tiny_inference_free_splade(root / "free"),
               "colbert": build_tiny_colbert(root / "c"), "m3": build_tiny_bge_m3(root / "m3")}
    settings = Settings(models=[ModelConfig(name=name, source=str(path), dtype="float32", engine="torch")
                                for name, path in folders.items()])
    registry = Registry(settings)
    asyncio.run(registry.load_all())
    assert all(m.state == "ready" for m in registry.models), [m.error for m in registry.models]
    with TestClient(create_app(settings, registry)) as test_client:
        yield test_client


@pytest.mark.parametrize("path, body", [
    ("/embed_sparse", {"model": "free", "inputs": TEXTS, "prompt_name": "query"}),
    ("/embed_sparse", {"model": "free", "inputs": TEXTS}),
    ("/embed_all", {"model": "colbert", "inputs": TEXTS, "prompt_name": "query"}),
    ("/embed_all", {"model": "m3", "inputs": TEXTS}),
    ("/embed_sparse", {"model": "m3", "inputs": TEXTS}),
])
def test_a_repeated_request_is_served_from_the_cache_with_the_same_rows(client, path, body):
    first = client.post(path, json=body)
    second = client.post(path, json=body)
    assert first.status_code == second.status_code == 200, first.text
    assert second.headers["x-cache-hits"] == str(len(TEXTS))
    assert second.json() == first.json()


def test_the_side_and_the_output_kind_are_in_the_key(client):
    query = client.post("/embed_sparse", json={"model": "free", "inputs": ["side test"],
                                               "prompt_name": "query"})
    document = client.post("/embed_sparse", json={"model": "free", "inputs": ["side test"],
                                                  "prompt_name": "document"})
    assert document.headers["x-cache-hits"] == "0" and document.json() != query.json()
    dense = client.post("/v1/embeddings", json={"model": "m3", "input": ["kind test"]})
    sparse = client.post("/embed_sparse", json={"model": "m3", "inputs": ["kind test"]})
    colbert = client.post("/embed_all", json={"model": "m3", "inputs": ["kind test"]})
    assert dense.status_code == sparse.status_code == colbert.status_code == 200
    assert sparse.headers["x-cache-hits"] == colbert.headers["x-cache-hits"] == "0"
