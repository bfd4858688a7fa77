"""embed-rerank 1.5.1's own API on the real server (default MiniLM): the requests its README shows, its
limits and error bodies, and the same vectors and scores as this server's OpenAI and Cohere routes.

embed-rerank's wheel ships no Python client (only its FastAPI app), so these are raw HTTP calls.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

MODEL = "all-MiniLM-L6-v2"
PASSAGES = ["Paris is the capital of France", "Berlin is in Germany", "Bananas are yellow"]


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def openai_vectors(http, texts: list[str]) -> np.ndarray:
    response = http.post("/v1/embeddings", json={"model": MODEL, "input": texts})
    return np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)


@pytest.mark.parametrize("path", ["/api/v1/embed/", "/api/v1/embed"])
def test_readme_embed_request_gives_the_openai_routes_vectors(http, path):
    texts = ["Hello MLX", "Apple Silicon rocks"]
    response = http.post(path, json={"texts": texts})  # the README's curl body
    assert response.status_code == 200, response.text
    body = response.json()
    vectors = np.array(body["vectors"], dtype=np.float32)
    np.testing.assert_allclose(vectors, openai_vectors(http, texts), atol=1e-6)
    assert [row["embedding"] for row in body["embeddings"]] == body["vectors"]
    assert [row["index"] for row in body["embeddings"]] == [0, 1]
    assert [row["text"] for row in body["embeddings"]] == texts
    assert body["dim"] == 384 and body["num_texts"] == 2
    assert body["model_info"] == "sentence-transformers/" + MODEL
    usage = body["usage"]
    assert usage["total_texts"] == 2 and usage["total_tokens"] > 4 and usage["normalize"] is True
    assert usage["batch_size"] == 2  # embed-rerank cuts batch_size (default 32) to the text count
    assert {"processing_time", "device", "backend", "timestamp"} <= set(body)


def test_normalize_false_returns_the_models_raw_output(http):
    body = http.post("/api/v1/embed/", json={"texts": ["hello"], "normalize": False}).json()
    raw = np.array(body["vectors"][0])
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3  # MiniLM's output before its Normalize module
    unit = openai_vectors(http, ["hello"])[0]
    np.testing.assert_allclose(raw / np.linalg.norm(raw), unit, atol=1e-6)


@pytest.mark.parametrize(("body", "loc"), [
    ({"texts": []}, ["body", "texts"]),
    ({"texts": ["x"] * 101}, ["body", "texts"]),
    ({"texts": ["ok", "   "]}, ["body", "texts"]),
    ({"texts": ["ok"], "batch_size": 129}, ["body", "batch_size"]),
    ({"texts": ["ok"], "max_tokens_override": 0}, ["body", "max_tokens_override"]),
    ({"texts": ["ok"], "truncation_strategy": "nope"}, ["body", "truncation_strategy"]),
    ({"texts": "not a list"}, ["body", "texts"]),
    ({}, ["body", "texts"]),
])
def test_embed_limits_are_422_in_fastapis_shape(http, body, loc):
    response = http.post("/api/v1/embed/", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == loc and detail[0]["msg"]


def test_a_text_too_long_with_the_error_strategy_is_400_in_embed_reranks_shape(http):
    response = http.post("/api/v1/embed/", json={"texts": ["word " * 2000], "truncation_strategy": "error"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "api_error" and body["status_code"] == 400 and "tokens" in body["detail"]
    # the default (smart_truncate) cuts it instead
    assert http.post("/api/v1/embed/", json={"texts": ["word " * 2000]}).status_code == 200


def test_max_tokens_override_cuts_the_input(http):
    long_text = "word " * 100
    short = http.post("/api/v1/embed/", json={"texts": [long_text], "max_tokens_override": 6}).json()
    assert short["usage"]["total_tokens"] == 6  # special tokens included
    full = http.post("/api/v1/embed/", json={"texts": [long_text]}).json()
    assert full["usage"]["total_tokens"] == 102 and full["vectors"] != short["vectors"]


def test_unknown_model_is_404_in_embed_reranks_shape(http):
    response = http.post("/api/v1/embed/", json={"texts": ["x"], "model": "nope"})
    assert response.status_code == 404
    assert response.json()["status_code"] == 404 and "nope" in response.json()["detail"]


def cohere_scores(http, query: str, documents: list[str]) -> dict[int, float]:
    results = http.post("/v1/rerank", json={"model": MODEL, "query": query, "documents": documents}).json()
    return {r["index"]: r["relevance_score"] for r in results["results"]}


@pytest.mark.parametrize("path", ["/api/v1/rerank/", "/api/v1/rerank"])
def test_readme_rerank_request_ranks_like_the_cohere_route(http, path):
    body = {"query": "capital of france", "documents": PASSAGES[:2], "top_n": 2}  # the README's body
    response = http.post(path, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    reference = cohere_scores(http, "capital of france", PASSAGES[:2])
    assert [r["index"] for r in answer["results"]] == [0, 1]
    for result in answer["results"]:
        assert result["score"] == pytest.approx(reference[result["index"]], abs=1e-6)
        assert result["text"] == PASSAGES[result["index"]]  # return_documents defaults to true
    assert answer["query"] == "capital of france" and answer["num_passages"] == 2
    assert answer["usage"]["total_passages"] == 2 and answer["usage"]["top_k"] == 2
    assert answer["method"] == "embedding_similarity"  # MiniLM reranks as a bi-encoder


def test_rerank_native_fields_top_k_and_document_objects(http):
    answer = http.post("/api/v1/rerank/", json={"query": "fruit", "passages": PASSAGES, "top_k": 1,
                                                "return_documents": False}).json()
    assert [r["index"] for r in answer["results"]] == [2] and "text" not in answer["results"][0]
    objects = http.post("/api/v1/rerank/", json={"query": "fruit",
                                                 "documents": [{"text": p} for p in PASSAGES]}).json()
    assert objects["results"][0]["index"] == 2 and len(objects["results"]) == 3  # top_k 10, cut to 3


@pytest.mark.parametrize(("body", "field"), [
    ({"query": "q", "passages": ["a"], "top_k": 0}, "top_k"),
    ({"query": "q", "passages": ["a"], "top_k": 101}, "top_k"),
    ({"query": "q", "passages": []}, "passages"),
    ({"query": "  ", "passages": ["a"]}, "query"),
    ({"query": "q"}, "passages"),
    ({"query": "q", "passages": ["a" * 4097]}, "passages"),
    ({"query": "q", "documents": [{"title": "no text"}]}, "documents"),
])
def test_rerank_limits_are_422(http, body, field):
    response = http.post("/api/v1/rerank/", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][1] == field


def test_rerank_batch(http):
    requests = [{"query": "fruit", "passages": PASSAGES, "top_k": 1},
                {"query": "capital of france", "documents": PASSAGES, "top_n": 2}]
    answers = http.post("/api/v1/rerank/batch", json=requests).json()
    assert [[r["index"] for r in a["results"]] for a in answers] == [[2], [0, 1]]
    assert [a["num_passages"] for a in answers] == [3, 3]
    bad = http.post("/api/v1/rerank/batch", json=[requests[0], {"query": "q", "passages": ["a"], "top_k": 0}])
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", 1, "top_k"]
    assert "batch item 1" in bad.json()["detail"][0]["msg"]
    too_many = http.post("/api/v1/rerank/batch", json=requests * 6)
    assert too_many.status_code == 400 and "Maximum 10" in too_many.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/openai/rerank", "/v1/rerank_openai"])
def test_openai_style_rerank(http, path):
    answer = http.post(path, json={"query": "fruit", "documents": PASSAGES, "top_n": 2}).json()
    reference = cohere_scores(http, "fruit", PASSAGES)
    best = sorted(reference, key=lambda i: -reference[i])
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == best[:2] and best[0] == 2
    assert answer["data"][0]["score"] == pytest.approx(reference[2], abs=1e-6)
    assert "document" not in answer["data"][0]
    assert answer["usage"]["total_passages"] == 3 and answer["usage"]["returned_passages"] == 2
    full = http.post(path, json={"query": "fruit", "documents": PASSAGES, "return_documents": True}).json()
    assert len(full["data"]) == 3 and full["data"][0]["document"] == PASSAGES[2]


def test_info_and_health_routes(http):
    embed_info = http.get("/api/v1/embed/info").json()
    assert embed_info["service"] == "EmbeddingService" and embed_info["backend"]["embedding_dim"] == 384
    rerank_info = http.get("/api/v1/rerank/info").json()
    assert rerank_info["service"] == "RerankingService" and rerank_info["max_passages"] == 1000
    assert http.get("/health/ready").json() == {"status": "ready"}
    assert http.get("/health/live").json() == {"status": "alive"}
    health = http.get("/health/").json()  # embed-rerank's path: the same route as /health
    assert health["status"] == "ok" and health["models"]  # this server's fields stay
    assert health["service"]["name"] and health["backend"]["model_loaded"] is True
    assert health["performance"]["embedding_dimension"] == 384 and health["uptime"] >= 0
    assert health["system"]["memory_total_gb"] > 0


def test_auth_metrics_logs_and_cache_apply_as_on_every_route(production_server):
    from compat_tests.production import (
        ADMIN_KEY,
        QUERY,
        QUERY_ONLY_KEY,
        STRICT,
        access_record,
        bearer,
        sample,
        scrape,
    )

    url = production_server.url
    unauthorized = httpx.post(f"{url}/api/v1/embed/", json={"texts": ["x"]})
    assert unauthorized.status_code == 401 and unauthorized.json()["status_code"] == 401
    tkr = httpx.post(f"{url}/embed/text", json={"texts": ["x"]})
    assert tkr.status_code == 401 and "API key" in tkr.json()["detail"]
    forbidden = httpx.post(f"{url}/api/v1/embed/", json={"texts": ["x"], "model": STRICT},
                           headers=bearer(QUERY_ONLY_KEY))
    assert forbidden.status_code == 403 and forbidden.json()["status_code"] == 403
    before = scrape(production_server)
    texts = [f"cached text {i}" for i in range(3)]
    first = httpx.post(f"{url}/api/v1/embed/", json={"texts": texts, "model": QUERY},
                       headers={**bearer(ADMIN_KEY), "x-request-id": "seed-embed-1"}, timeout=60)
    again = httpx.post(f"{url}/api/v1/embed", json={"texts": texts, "model": QUERY},
                       headers=bearer(ADMIN_KEY), timeout=60)
    after = scrape(production_server)
    assert first.headers["x-cache-hits"] == "0" and again.headers["x-cache-hits"] == "3"
    assert again.json()["vectors"] == first.json()["vectors"]
    route = {"route": "/api/v1/embed", "model": QUERY}
    assert sample(after, "gateway_requests_total", method="POST", status="200", **route) - \
        sample(before, "gateway_requests_total", method="POST", status="200", **route) == 2
    inputs = sample(after, "gateway_inputs_total", **route) - sample(before, "gateway_inputs_total", **route)
    assert inputs == 3  # the repeated texts came from the cache
    record = access_record(production_server, "seed-embed-1")
    assert record["route"] == "/api/v1/embed" and record["model"] == QUERY and record["status"] == 200


def test_rate_limits_count_the_seed_routes(tmp_path):
    import secrets

    from compat_tests.server import run_server

    key = f"sk-seed-{secrets.token_hex(8)}"
    (tmp_path / "limits.toml").write_text(f'[[api_keys]]\nkey = "{key}"\nname = "seed"\nrpm = 2\n')
    auth = {"Authorization": f"Bearer {key}"}
    with run_server(tmp_path, args=["--config", str(tmp_path / "limits.toml")]) as limited, \
            httpx.Client(base_url=limited.url, headers=auth, timeout=60) as client:
        assert client.post("/api/v1/embed/", json={"texts": ["one"]}).status_code == 200
        assert client.post("/embed/text", json={"texts": ["two"]}).status_code == 200
        refused = client.post("/api/v1/rerank/", json={"query": "q", "passages": ["a"]})
        assert refused.status_code == 429 and refused.json()["status_code"] == 429
        assert int(refused.headers["retry-after"]) >= 1
        tkr = client.post("/embed/image", files={"file": ("a.png", b"x", "image/png")})
        assert tkr.status_code == 429 and isinstance(tkr.json()["detail"], str)
