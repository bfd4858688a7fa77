"""BGE-M3 (FlagEmbedding layout): dense, sparse (lexical weights) and ColBERT outputs of one folder,
served on ``/v1/embeddings``, ``/embed_sparse`` and ``/embed_all``, equal to a reference written from
FlagEmbedding's formulas (``tests/bge_m3_reference.py``) on the same tiny random weights."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import ModelConfig, Settings
from gateway.http.app import create_app
from gateway.serving.registry import Registry
from tests.bge_m3_reference import BgeM3Reference
from tests.tiny_retrieval import build_tiny_bge_m3

TEXTS = ["hybrid retrieval with dense vectors", "the the the repeated token", "a", "naïve café. " * 20]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_bge_m3(tmp_path_factory.mktemp("m3") / "bge-m3")


@pytest.fixture(scope="module")
def client(folder):
    settings = Settings(models=[ModelConfig(name="m3", source=str(folder), dtype="float32", engine="torch")],
                        cache_max_bytes=0)
    registry = Registry(settings)
    asyncio.run(registry.load_all())
    assert registry.models[0].state == "ready", registry.models[0].error
    with TestClient(create_app(settings, registry)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reference(folder):
    return BgeM3Reference(folder).encode(TEXTS)


def test_all_three_outputs_are_listed(client):
    card = next(c for c in client.get("/v1/models").json()["data"] if c["id"] == "m3")
    assert card["outputs"] == ["dense", "sparse", "multi_vector"]


def test_dense_vectors_equal_the_reference(client, reference):
    data = client.post("/v1/embeddings", json={"model": "m3", "input": TEXTS}).json()["data"]
    np.testing.assert_allclose([d["embedding"] for d in data], reference[0], atol=1e-5)


def test_sparse_weights_equal_the_reference(client, reference):
    rows = client.post("/embed_sparse", json={"model": "m3", "inputs": TEXTS}).json()
    for row, expected in zip(rows, reference[1], strict=True):
        assert [t["index"] for t in row] == sorted(expected)  # the special tokens are gone, ids ascending
        np.testing.assert_allclose([t["value"] for t in row], [expected[i] for i in sorted(expected)],
                                   atol=1e-5)
    assert sum(len(row) for row in rows) >= 5  # real terms compared, not empty rows
    assert all(len(row) < len(text.split()) + 3 for row, text in zip(rows, TEXTS, strict=True))


def test_colbert_vectors_equal_the_reference(client, reference):
    rows = client.post("/embed_all", json={"model": "m3", "inputs": TEXTS}).json()
    for row, expected in zip(rows, reference[2], strict=True):
        assert np.shape(row) == expected.shape  # every token after CLS, the final </s> included
        np.testing.assert_allclose(row, expected, atol=1e-5)


def test_rerank_keeps_the_dense_cosine(client, reference):
    answer = client.post("/v1/rerank", json={"model": "m3", "query": TEXTS[0], "documents": TEXTS[1:]}).json()
    cosine = reference[0][1:] @ reference[0][0]
    assert [r["index"] for r in answer["results"]] == np.argsort(-cosine, kind="stable").tolist()


def test_openai_route_gives_the_sparse_rows_when_max_active_dims_is_sent(client, reference):
    body = {"model": "m3", "input": TEXTS, "max_active_dims": 3}
    data = client.post("/v1/embeddings", json=body).json()["data"]
    for row, expected in zip(data, reference[1], strict=True):
        top = sorted(sorted(expected, key=expected.get, reverse=True)[:3])
        assert row["embedding"]["indices"] == top
        np.testing.assert_allclose(row["embedding"]["values"], [expected[i] for i in top], atol=1e-5)
