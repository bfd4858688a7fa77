"""Sparse output (issue 23): sentence-transformers ``SparseEncoder`` folders (SPLADE, inference-free SPLADE)
served on TEI ``/embed_sparse`` and ``/v1/embeddings``, equal to ``SparseEncoder.encode`` on the same tiny
random weights (indices identical, values within 1e-4 in float32), behind the real app."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import ModelConfig, Settings
from gateway.http.app import create_app
from gateway.serving.registry import Registry
from tests.tiny_models import build_tiny_encoder_embedder
from tests.tiny_retrieval import build_tiny_inference_free_splade, build_tiny_splade

TEXTS = ["What is deep learning?", "The quick brown fox jumps over the lazy dog. " * 4, "a",
         "naïve café ünïcode"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("sparse")
    return {"splade": build_tiny_splade(root / "splade"),
            "free": build_tiny_inference_free_splade(root / "free"),
            "dense": build_tiny_encoder_embedder(root / "dense", "bert")}


@pytest.fixture(scope="module")
def client(folders):
    models = [ModelConfig(name="splade", source=str(folders["splade"]), dtype="float32", engine="torch"),
              ModelConfig(name="free", source=str(folders["free"]), dtype="float32", engine="torch"),
              ModelConfig(name="topk", source=str(folders["splade"]), dtype="float32", engine="torch",
                          max_active_dims=5),
              ModelConfig(name="dense", source=str(folders["dense"]), dtype="float32", engine="torch")]
    settings = Settings(models=models, cache_max_bytes=0)
    registry = Registry(settings)
    asyncio.run(registry.load_all())  # loaded before the app starts: its lifespan finds them ready
    assert all(m.state == "ready" for m in registry.models), [m.error for m in registry.models]
    with TestClient(create_app(settings, registry)) as test_client:
        yield test_client


def reference(folder, task: str | None, k: int | None = None) -> np.ndarray:
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(folder), device="cpu")
    dense = model.encode(TEXTS, task=task, convert_to_tensor=True, max_active_dims=k) if task else \
        model.encode(TEXTS, convert_to_tensor=True, max_active_dims=k)
    return dense.to_dense().numpy()


def assert_equal_rows(rows: list[tuple[list[int], list[float]]], want: np.ndarray) -> float:
    worst = 0.0
    for (indices, values), expected in zip(rows, want, strict=True):
        nonzero = np.flatnonzero(expected)
        assert indices == nonzero.tolist()  # identical terms, ascending
        worst = max(worst, float(np.abs(np.asarray(values) - expected[nonzero]).max()))
    assert worst <= TOLERANCE
    return worst


@pytest.mark.parametrize("model, prompt_name", [("splade", None), ("splade", "query"), ("free", None),
                                                ("free", "query"), ("free", "document")])
def test_embed_sparse_equals_sparse_encoder(client, folders, model, prompt_name):
    body = {"inputs": TEXTS, "model": model}
    if prompt_name:
        body["prompt_name"] = prompt_name
    response = client.post("/embed_sparse", json=body)
    assert response.status_code == 200, response.text
    rows = [([t["index"] for t in row], [t["value"] for t in row]) for row in response.json()]
    assert_equal_rows(rows, reference(folders[model], prompt_name))


def test_inference_free_query_side_is_the_static_table(client, folders):
    query = client.post("/embed_sparse", json={"inputs": "hello world", "model": "free",
                                               "prompt_name": "query"}).json()[0]
    assert len(query) == 2  # "hello" and "world", no [CLS] / [SEP]: the static side reads text tokens only
    document = client.post("/embed_sparse", json={"inputs": "hello world", "model": "free"}).json()[0]
    assert len(document) > 2  # the MLM side expands to many terms


@pytest.mark.parametrize("input_type, task", [(None, None), ("query", "query"), ("document", "document")])
def test_openai_embeddings_of_a_sparse_model_are_indices_and_values(client, folders, input_type, task):
    body = {"input": TEXTS, "model": "free"}
    if input_type:
        body["input_type"] = input_type
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    rows = [(d["embedding"]["indices"], d["embedding"]["values"]) for d in answer["data"]]
    assert [d["index"] for d in answer["data"]] == list(range(len(TEXTS)))
    assert_equal_rows(rows, reference(folders["free"], task))
    assert answer["usage"]["prompt_tokens"] > 0


def test_max_active_dims_keeps_the_top_k_as_sentence_transformers(client, folders):
    body = {"input": TEXTS, "model": "splade", "max_active_dims": 7}
    answer = client.post("/v1/embeddings", json=body).json()
    rows = [(d["embedding"]["indices"], d["embedding"]["values"]) for d in answer["data"]]
    assert all(len(indices) == 7 for indices, _ in rows)
    assert_equal_rows(rows, reference(folders["splade"], None, k=7))
    configured = client.post("/embed_sparse", json={"inputs": TEXTS, "model": "topk"}).json()
    assert [len(row) for row in configured] == [5] * len(TEXTS)
    overridden = client.post("/embed_sparse", json={"inputs": TEXTS, "model": "topk", "max_active_dims": 9})
    assert [len(row) for row in overridden.json()] == [9] * len(TEXTS)


@pytest.mark.parametrize("field, value", [("encoding_format", "base64"), ("dimensions", 8),
                                          ("output_dimension", 8), ("encoding_format", "int8"),
                                          ("late_chunking", True), ("max_active_dims", 0)])
def test_dense_only_options_are_refused_naming_the_field(client, field, value):
    response = client.post("/v1/embeddings", json={"input": "hi", "model": "splade", field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


def test_wrong_output_for_the_model_is_a_400_in_each_routes_shape(client):
    dense_on_sparse = client.post("/embed_sparse", json={"inputs": "hi", "model": "dense"})
    assert dense_on_sparse.status_code == 400
    assert dense_on_sparse.json()["error_type"] == "Validation"
    assert "gives dense output, not sparse" in dense_on_sparse.json()["error"]
    sparse_on_dense = client.post("/embed", json={"inputs": "hi", "model": "splade"})
    assert sparse_on_dense.status_code == 400
    assert "/embed_sparse" in sparse_on_dense.json()["error"]
    cohere = client.post("/v1/embed", json={"texts": ["hi"], "model": "splade", "input_type": "search_query"})
    assert cohere.status_code == 400, cohere.text
    bad_prompt = client.post("/embed_sparse", json={"inputs": "hi", "model": "free", "prompt_name": "nope"})
    assert bad_prompt.status_code == 400 and bad_prompt.json()["error_type"] == "Validation"


def test_token_ids_and_truncation(client, folders):
    ids = client.post("/tokenize", json={"inputs": "hello world", "model": "splade"}).json()[0]
    by_ids = client.post("/embed_sparse", json={"inputs": [[t["id"] for t in ids]], "model": "splade"}).json()
    by_text = client.post("/embed_sparse", json={"inputs": "hello world", "model": "splade"}).json()
    assert by_ids == by_text
    long = "word " * 2000
    rejected = client.post("/embed_sparse", json={"inputs": long, "model": "splade", "truncate": False})
    assert rejected.status_code == 400
    assert client.post("/embed_sparse", json={"inputs": long, "model": "splade"}).status_code == 200


def test_models_health_and_info_show_task_and_outputs(client):
    cards = {card["id"]: card for card in client.get("/v1/models").json()["data"]}
    assert (cards["free"]["task"], cards["free"]["outputs"]) == ("embed", ["sparse"])
    assert cards["dense"]["outputs"] == ["dense"]
    health = {m["name"]: m for m in client.get("/health").json()["models"]}
    assert health["splade"]["outputs"] == ["sparse"] and health["dense"]["outputs"] == ["dense"]
    info = client.get("/info", params={"model": "splade"}).json()
    assert info["outputs"] == ["sparse"] and info["model_type"] == {"embedding": {"pooling": "splade"}}


def test_a_sparse_model_does_not_rerank(client):
    response = client.post("/v1/rerank", json={"model": "splade", "query": "q", "documents": ["a", "b"]})
    assert response.status_code == 400 and "does not rerank" in response.json()["message"]
