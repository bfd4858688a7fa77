"""Multi-vector output (issue 23): sentence-transformers ``MultiVectorEncoder`` folders (ColBERT) and
PyLate-format folders served on TEI ``/embed_all``, vLLM ``/pooling`` and the rerank routes (MaxSim),
equal to the reference library on the same tiny random weights, behind the real app."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import ModelConfig, Settings
from gateway.http.app import create_app
from gateway.serving.registry import Registry
from tests.tiny_models import build_tiny_encoder_embedder
from tests.tiny_retrieval import build_tiny_colbert, build_tiny_pylate_colbert

TEXTS = ["What is deep learning?", "The quick brown fox, jumps over the lazy dog. " * 3, "a",
         "naïve café ünïcode."]
DOCUMENTS = ["Deep learning is a kind of machine learning.", "Foxes are quick and brown.",
             "Paris is the capital of France.", "learning deep, deeply learned."]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("multi_vector")
    return {"colbert": build_tiny_colbert(root / "colbert"),
            "pylate": build_tiny_pylate_colbert(root / "pylate"),
            "dense": build_tiny_encoder_embedder(root / "dense", "bert")}


@pytest.fixture(scope="module")
def client(folders):
    models = [ModelConfig(name=name, source=str(folders[name]), dtype="float32", engine="torch")
              for name in ("colbert", "pylate", "dense")]
    settings = Settings(models=models, cache_max_bytes=0)
    registry = Registry(settings)
    asyncio.run(registry.load_all())  # loaded before the app starts: its lifespan finds them ready
    assert all(m.state == "ready" for m in registry.models), [m.error for m in registry.models]
    with TestClient(create_app(settings, registry)) as test_client:
        yield test_client


def reference(folder):
    from sentence_transformers import MultiVectorEncoder

    return MultiVectorEncoder(str(folder), device="cpu")


def assert_same_rows(rows, want) -> float:
    worst = 0.0
    for row, expected in zip(rows, want, strict=True):
        expected = np.asarray(expected)
        assert np.shape(row) == expected.shape  # exactly the tokens the reference keeps
        worst = max(worst, float(np.abs(np.asarray(row) - expected).max()))
    assert worst <= TOLERANCE
    return worst


@pytest.mark.parametrize("model", ["colbert", "pylate"])
@pytest.mark.parametrize("prompt_name", [None, "query", "document"])
def test_embed_all_equals_multi_vector_encoder(client, folders, model, prompt_name):
    body = {"inputs": TEXTS, "model": model}
    if prompt_name:
        body["prompt_name"] = prompt_name
    response = client.post("/embed_all", json=body)
    assert response.status_code == 200, response.text
    encoder = reference(folders[model])
    encode = {None: encoder.encode, "query": encoder.encode_query, "document": encoder.encode_document}
    assert_same_rows(response.json(), [t.numpy() for t in encode[prompt_name](TEXTS)])


def test_pooling_token_embed_is_vllms_shape(client, folders):
    response = client.post("/pooling", json={"model": "pylate", "input": TEXTS, "task": "token_embed"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "list" and answer["model"] == "pylate" and answer["id"].startswith("pool-")
    assert [d["index"] for d in answer["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "pooling" for d in answer["data"])
    assert answer["usage"]["prompt_tokens"] > 0
    want = [t.numpy() for t in reference(folders["pylate"]).encode(TEXTS)]
    assert_same_rows([d["data"] for d in answer["data"]], want)
    dense = client.post("/pooling", json={"model": "dense", "input": "hi", "task": "embed"})
    assert dense.status_code == 200 and len(dense.json()["data"][0]["data"]) == 64


@pytest.mark.parametrize("body, param", [
    ({"model": "pylate", "input": "hi", "task": "classify"}, "task"),
    ({"model": "pylate", "input": "hi", "encoding_format": "base64"}, "encoding_format"),
    ({"model": "dense", "input": "hi", "task": "token_embed"}, "model"),
    ({"model": "pylate", "input": []}, "input"),
])
def test_pooling_errors_are_400s_in_openai_shape(client, body, param):
    response = client.post("/pooling", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("model", ["colbert", "pylate"])
def test_rerank_scores_by_maxsim_as_the_reference(client, folders, model):
    query = "deep learning"
    encoder = reference(folders[model])
    scores = encoder.similarity(encoder.encode_query([query]), encoder.encode_document(DOCUMENTS))[0].numpy()
    query_tokens = encoder.encode_query([query])[0].shape[0]
    want_order = np.argsort(-scores, kind="stable").tolist()
    cohere = client.post("/v1/rerank", json={"model": model, "query": query, "documents": DOCUMENTS}).json()
    assert [r["index"] for r in cohere["results"]] == want_order
    got = {r["index"]: r["relevance_score"] for r in cohere["results"]}
    for index, score in enumerate(scores):
        assert got[index] == pytest.approx((score / query_tokens + 1) / 2, abs=1e-5)
    body = {"model": model, "query": query, "texts": DOCUMENTS, "raw_scores": True}
    tei = client.post("/rerank", json=body)
    assert tei.status_code == 200, tei.text
    assert [r["index"] for r in tei.json()] == want_order
    assert [r["score"] for r in tei.json()] == pytest.approx(sorted(scores.tolist(), reverse=True), abs=1e-4)


def test_wrong_routes_for_a_multi_vector_model_are_400s(client):
    dense_route = client.post("/v1/embeddings", json={"model": "colbert", "input": "hi"})
    assert dense_route.status_code == 400 and "/embed_all" in dense_route.json()["error"]["message"]
    ids = client.post("/embed_all", json={"model": "colbert", "inputs": [[101, 102]]})
    assert ids.status_code == 400 and ids.json()["error_type"] == "Validation"
    sparse_route = client.post("/embed_sparse", json={"model": "colbert", "inputs": "hi"})
    assert sparse_route.status_code == 400


@pytest.mark.parametrize("path, body", [
    ("/v1/multimodalembeddings", {"model": "colbert",
                                  "inputs": [{"content": [{"type": "text", "text": "hi"}]}]}),
    ("/v1/embeddings", {"model": "colbert", "input": ["hi", "there"], "late_chunking": True}),
    ("/api/embed", {"model": "pylate", "input": "hi"}),
    ("/v2/embed", {"model": "pylate", "texts": ["hi"], "input_type": "search_query",
                   "embedding_types": ["float"]}),
])
def test_dense_routes_refuse_a_multi_vector_model_with_a_400(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("path, body", [
    ("/v2/rerank", {"query": "deep learning", "documents": DOCUMENTS}),
    ("/api/rerank", {"query": "deep learning", "documents": DOCUMENTS}),
    ("/v1/rerank", {"query": "deep learning", "documents": DOCUMENTS, "top_k": 4}),  # Voyage's body
])
def test_every_rerank_route_ranks_by_maxsim(client, folders, path, body):
    encoder = reference(folders["colbert"])
    query, documents = encoder.encode_query(["deep learning"]), encoder.encode_document(DOCUMENTS)
    scores = encoder.similarity(query, documents)[0]
    answer = client.post(path, json={"model": "colbert", **body})
    assert answer.status_code == 200, answer.text
    results = answer.json().get("results") or answer.json().get("data")
    assert [r["index"] for r in results] == np.argsort(-scores.numpy(), kind="stable").tolist()


def test_vllm_score_of_a_multi_vector_model_is_the_references_maxsim(client, folders):
    encoder = reference(folders["pylate"])
    query, documents = encoder.encode_query(["deep learning"]), encoder.encode_document(DOCUMENTS)
    want = encoder.similarity(query, documents)[0].numpy()
    answer = client.post("/score", json={"model": "pylate", "text_1": "deep learning", "text_2": DOCUMENTS})
    assert answer.status_code == 200, answer.text
    assert [d["score"] for d in answer.json()["data"]] == pytest.approx(want.tolist(), abs=1e-4)
