"""Ollama's API through the ``ollama`` client, LangChain's ``OllamaEmbeddings`` and raw HTTP: embeddings
(checked against the OpenAI route), the legacy route, discovery routes, the rerank proposal, errors."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import httpx
import numpy as np
import ollama
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.dialects import openai_route, openai_tokens, post
from compat_tests.embed_reference import LONG_TEXT, reference_vectors, truncating
from compat_tests.production import ADMIN_KEY, QUERY, QUERY_ALIAS, QUERY_ONLY_KEY, RERANKER, bearer
from compat_tests.test_openai_embeddings import TEXTS, cosines

QUERY_DOCS = ("capital of France?", ["Bananas are yellow.", "Paris is the capital of France.", "Berlin."])


@pytest.fixture(scope="module")
def client(server) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=60)


def test_embed_matches_the_openai_route(client, server):
    response = client.embed(model=DEFAULT_ALIAS, input=TEXTS)
    got = np.array(response.embeddings)
    assert response.model == DEFAULT_ALIAS and got.shape == (len(TEXTS), 384)
    assert isinstance(response.embeddings[0][0], float)
    assert cosines(got, openai_route(server, TEXTS, DEFAULT_ALIAS)).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert response.prompt_eval_count == openai_tokens(server, TEXTS, DEFAULT_ALIAS)
    assert isinstance(response.total_duration, int) and response.total_duration >= response.load_duration > 0
    single = client.embed(model=f"{DEFAULT_MODEL}:latest", input=TEXTS[1])  # the tag Ollama lists
    assert single.model == f"{DEFAULT_MODEL}:latest" and cosines(single.embeddings, got[1:2])[0] >= 0.9999


def test_embed_dimensions_truncate_and_renormalize_like_ollama(client, server):
    small = np.array(client.embed(model=DEFAULT_ALIAS, input=TEXTS[:2], dimensions=64).embeddings)
    assert small.shape == (2, 64)
    assert cosines(small, openai_route(server, TEXTS[:2], DEFAULT_ALIAS, dimensions=64)).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)
    for full in (384, 1000):  # Ollama only ever shortens
        assert len(client.embed(model=DEFAULT_ALIAS, input="x", dimensions=full).embeddings[0]) == 384


def test_num_ctx_caps_the_input_length(client, reference_model):
    response = client.embed(model=DEFAULT_ALIAS, input=LONG_TEXT, options={"num_ctx": 16, "temperature": 0},
                            keep_alive="5m")
    assert response.prompt_eval_count == 16
    with truncating(reference_model, max_tokens=16):
        assert cosines(response.embeddings, reference_vectors(reference_model, [LONG_TEXT]))[0] >= 0.9999


def test_empty_input_answers_no_embeddings(server):
    for empty in ("", [], None):
        body = post(server, "/api/embed", {"model": DEFAULT_ALIAS, "input": empty}).json()
        assert body["embeddings"] == [] and body["prompt_eval_count"] == 0 and body["model"] == DEFAULT_ALIAS


def test_legacy_embeddings_skip_the_final_normalization(client, server):
    legacy = np.array([client.embeddings(model=DEFAULT_ALIAS, prompt=TEXTS[0]).embedding])
    raw = openai_route(server, TEXTS[0:1], DEFAULT_ALIAS, normalized=False)
    assert cosines(legacy, raw)[0] >= 0.9999
    assert np.linalg.norm(legacy) > 1.5  # MiniLM's pooled output before its Normalize module
    np.testing.assert_allclose(np.linalg.norm(legacy), np.linalg.norm(raw), rtol=1e-4)
    assert client.embeddings(model=DEFAULT_ALIAS, prompt="").embedding == []


def test_async_client(server):
    async def embed():
        return await ollama.AsyncClient(host=server.url, timeout=60).embed(model=DEFAULT_ALIAS, input=TEXTS)

    got = np.array(asyncio.run(embed()).embeddings)
    assert cosines(got, openai_route(server, TEXTS, DEFAULT_ALIAS)).min() >= 0.9999


def test_discovery_routes_answer_in_ollama_shapes(client, server):
    assert httpx.get(server.url).text == "Ollama is running"
    assert all(httpx.head(f"{server.url}{path}").status_code == 200 for path in ("/", "/api/version",
                                                                                "/api/tags"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", httpx.get(f"{server.url}/api/version").json()["version"])
    listed = client.list().models
    assert [m.model for m in listed] == [f"{DEFAULT_MODEL}:latest", f"{DEFAULT_ALIAS}:latest"]
    assert len({m.digest for m in listed}) == 1 and re.fullmatch(r"[0-9a-f]{64}", listed[0].digest)
    assert listed[0].digest == client.list().models[0].digest  # stable
    details = listed[0].details
    assert (details.family, details.families, details.parameter_size) == ("bert", ["bert"], "22.7M")
    assert listed[0].size > 0 and listed[0].modified_at <= datetime.now(UTC)
    raw = httpx.get(f"{server.url}/api/tags").json()["models"][0]
    assert raw["capabilities"] == ["embedding"] and raw["details"]["embedding_length"] == 384
    shown = client.show(DEFAULT_ALIAS)
    assert shown.capabilities == ["embedding"] and shown.details.family == "bert"
    assert shown.modelinfo["bert.context_length"] == 256 and shown.modelinfo["bert.embedding_length"] == 384
    running = client.ps().models
    assert [m.model for m in running] == [m.model for m in listed]
    assert running[0].expires_at > datetime.now(UTC) and running[0].size_vram == 0
    tei = post(server, "/", {"inputs": "x"})  # POST / stays TEI's embed route
    assert tei.status_code == 200 and len(tei.json()[0]) == 384


def test_langchain_ollama_embeddings(server):
    from langchain_ollama import OllamaEmbeddings

    embeddings = OllamaEmbeddings(model=DEFAULT_ALIAS, base_url=server.url, validate_model_on_init=True)
    expected = openai_route(server, TEXTS, DEFAULT_ALIAS)
    assert cosines(embeddings.embed_documents(TEXTS), expected).min() >= 0.9999
    assert cosines([embeddings.embed_query(TEXTS[1])], expected[1:2])[0] >= 0.9999
    assert cosines(asyncio.run(embeddings.aembed_documents(TEXTS)), expected).min() >= 0.9999
    with pytest.raises(ValueError, match="not found"):
        OllamaEmbeddings(model="nomic-embed-text", base_url=server.url, validate_model_on_init=True)


def test_rerank_proposal_matches_the_cohere_route(server):
    query, documents = QUERY_DOCS
    body = post(server, "/api/rerank", {"model": DEFAULT_ALIAS, "query": query, "documents": documents,
                                        "top_n": 2}).json()
    cohere = post(server, "/v1/rerank", {"model": DEFAULT_ALIAS, "query": query,
                                         "documents": documents}).json()
    assert body["model"] == DEFAULT_ALIAS and len(body["results"]) == 2
    assert [(r["index"], r["relevance_score"]) for r in body["results"]] == \
        [(r["index"], r["relevance_score"]) for r in cohere["results"][:2]]
    assert body["results"][0] == {"index": 1, "relevance_score": body["results"][0]["relevance_score"],
                                  "document": documents[1]}
    bare = post(server, "/api/rerank", {"model": DEFAULT_ALIAS, "query": query, "documents": documents,
                                        "return_documents": False}).json()
    assert len(bare["results"]) == 3 and all("document" not in r for r in bare["results"])


TOO_LONG = "the input length exceeds the context length"
ERRORS = {
    "unknown model": ("/api/embed", {"model": "nomic-embed-text", "input": "x"}, 404,
                      "model 'nomic-embed-text' not found"),
    "no model": ("/api/embed", {"input": "x"}, 404, "model '' not found"),
    "too long, truncate false": ("/api/embed", {"model": DEFAULT_ALIAS, "input": ["ok", LONG_TEXT],
                                                "truncate": False}, 400, TOO_LONG),
    "too long for num_ctx": ("/api/embed", {"model": DEFAULT_ALIAS, "input": "a b c d e f g h i j",
                                            "truncate": False, "options": {"num_ctx": 4}}, 400, TOO_LONG),
    "blank input": ("/api/embed", {"model": DEFAULT_ALIAS, "input": ["ok", " "]}, 400, "input[1]"),
    "input of the wrong type": ("/api/embed", {"model": DEFAULT_ALIAS, "input": 5}, 400, "input"),
    "negative dimensions": ("/api/embed", {"model": DEFAULT_ALIAS, "input": "x", "dimensions": -1}, 400,
                            "dimensions"),
    "bad num_ctx": ("/api/embed", {"model": DEFAULT_ALIAS, "input": "x", "options": {"num_ctx": "big"}}, 400,
                    "num_ctx"),
    "malformed JSON": ("/api/embed", b'{"model": ', 400, "JSON"),
    "legacy without model": ("/api/embeddings", {"prompt": "x"}, 400, "model is required"),
    "legacy unknown model": ("/api/embeddings", {"model": "x", "prompt": "x"}, 404, "model 'x' not found"),
    "show without model": ("/api/show", {}, 400, "model is required"),
    "show unknown model": ("/api/show", {"model": "llama3"}, 404, "model 'llama3' not found"),
    "rerank empty query": ("/api/rerank", {"model": DEFAULT_ALIAS, "query": " ", "documents": ["a"]}, 400,
                           "query"),
    "rerank no documents": ("/api/rerank", {"model": DEFAULT_ALIAS, "query": "q", "documents": []}, 400,
                            "documents"),
    "rerank unknown model": ("/api/rerank", {"model": "bge", "query": "q", "documents": ["a"]}, 404,
                             "model 'bge' not found"),
    "a route Ollama has and we do not": ("/api/generate", {"model": DEFAULT_ALIAS, "prompt": "hi"}, 404,
                                         "route"),
}


@pytest.mark.parametrize("path, body, status, message", ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_ollama_shaped(server, path, body, status, message):
    response = post(server, path, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]


def test_client_raises_response_error_and_server_keeps_serving(client, server):
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model=DEFAULT_ALIAS, input=LONG_TEXT, truncate=False)
    assert (info.value.status_code, info.value.error) == (400, TOO_LONG)
    with pytest.raises(ollama.ResponseError) as info:
        client.show("llama3")
    assert info.value.status_code == 404
    wrong_method = httpx.get(f"{server.url}/api/embed")
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error"}
    assert len(client.embed(model=DEFAULT_ALIAS, input="still serving").embeddings) == 1


def test_api_keys_and_model_limits_apply(production_server):
    missing = httpx.get(f"{production_server.url}/api/tags")
    assert missing.status_code == 401 and set(missing.json()) == {"error"}
    admin = ollama.Client(host=production_server.url, headers=bearer(ADMIN_KEY), timeout=60)
    listed = {m.model: m for m in admin.list().models}
    assert f"{RERANKER}:latest" in listed and f"{QUERY_ALIAS}:latest" in listed
    raw = httpx.get(f"{production_server.url}/api/tags", headers=bearer(ADMIN_KEY)).json()["models"]
    assert {m["model"]: m["capabilities"] for m in raw}[f"{RERANKER}:latest"] == ["rerank"]
    limited = ollama.Client(host=production_server.url, headers=bearer(QUERY_ONLY_KEY), timeout=60)
    assert {m.model for m in limited.list().models} == {f"{QUERY}:latest", f"{QUERY_ALIAS}:latest"}
    assert len(limited.embed(model=QUERY_ALIAS, input="x").embeddings) == 1
    with pytest.raises(ollama.ResponseError) as info:
        limited.embed(model=RERANKER, input="x")
    assert info.value.status_code == 403
    ranked = admin._client.post("/api/rerank", json={"model": RERANKER, "query": QUERY_DOCS[0],
                                                     "documents": QUERY_DOCS[1]}).json()
    assert sorted(r["index"] for r in ranked["results"]) == [0, 1, 2]  # a cross-encoder serves it too
