"""API keys through the real server, driven by the openai and cohere SDKs and raw HTTP.

Every route but /health and /ready needs ``Authorization: Bearer <key>``; a missing or wrong key is a
401 in the route's own error shape; a key limited to some models gets 403 for the others; /metrics
takes only the metrics key.
"""

from __future__ import annotations

import cohere
import httpx
import openai
import pytest

from compat_tests.production import (
    ADMIN_KEY,
    METRICS_KEY,
    QUERY,
    QUERY_ALIAS,
    QUERY_ONLY_KEY,
    RERANKER,
    STRICT,
    bearer,
)

DOCUMENTS = ["Paris is the capital of France.", "Bananas are yellow."]


def client(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base, api_key=key, max_retries=0)


@pytest.mark.parametrize("key", ["sk-wrong", ADMIN_KEY + "x", ADMIN_KEY[:-1]])
def test_openai_sdk_with_a_wrong_key_raises_authentication_error(production_server, key):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(production_server, key).embeddings.create(model=QUERY, input="hello")
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    assert caught.value.response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        client(production_server, key).models.list()


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Bearer"},
                                     {"Authorization": f"Basic {ADMIN_KEY}"}, {"X-API-Key": ADMIN_KEY}])
def test_a_missing_key_is_401_in_the_openai_shape(production_server, headers):
    response = httpx.post(f"{production_server.url}/v1/embeddings", headers=headers,
                          json={"model": QUERY, "input": "hello"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and "API key" in error["message"]


def test_a_valid_key_reaches_every_model(production_server):
    admin = client(production_server, ADMIN_KEY)
    assert {m.id for m in admin.models.list()} == {STRICT, QUERY, QUERY_ALIAS, RERANKER}
    for model in (STRICT, QUERY, QUERY_ALIAS):
        assert len(admin.embeddings.create(model=model, input="hello").data[0].embedding) == 384


def test_a_key_limited_to_one_model_gets_403_for_the_others(production_server):
    limited = client(production_server, QUERY_ONLY_KEY)
    assert len(limited.embeddings.create(model=QUERY, input="hello").data) == 1
    assert len(limited.embeddings.create(model=QUERY_ALIAS, input="hello").data) == 1  # by its alias too
    with pytest.raises(openai.PermissionDeniedError) as caught:
        limited.embeddings.create(model=STRICT, input="hello")
    assert caught.value.status_code == 403
    assert caught.value.body["param"] == "model"


def test_a_limited_key_sees_only_its_models(production_server):
    limited = client(production_server, QUERY_ONLY_KEY)
    assert [m.id for m in limited.models.list()] == [QUERY, QUERY_ALIAS]
    with pytest.raises(openai.NotFoundError) as caught:
        limited.embeddings.create(model="no-such-model", input="hello")
    assert STRICT not in caught.value.message and QUERY in caught.value.message


def test_health_and_probes_need_no_key(production_server):
    for path in ("/health", "/ready", "/health/ready", "/health/live"):  # the last two: embed-rerank's probes
        assert httpx.get(f"{production_server.url}{path}").status_code == 200


@pytest.mark.parametrize("headers", [{}, bearer("sk-wrong"), bearer(METRICS_KEY), {"X-API-Key": ADMIN_KEY}])
def test_health_without_a_valid_key_tells_only_the_status(production_server, headers):
    # a wrong key is no 401 here: a probe configured with a rotated key keeps reading the status
    response = httpx.get(f"{production_server.url}/health", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert QUERY not in response.text and "memory" not in response.text


def test_health_with_a_key_shows_the_models_it_may_use(production_server):
    admin = httpx.get(f"{production_server.url}/health", headers=bearer(ADMIN_KEY)).json()
    assert admin["status"] == "ok" and admin["uptime_s"] > 0
    assert {m["name"] for m in admin["models"]} == {STRICT, QUERY, RERANKER}
    assert admin["memory"]["rss_bytes"] > 0 and admin["cache"]["backend"] == "memory"
    assert admin["system"]["memory_total_gb"] > 0  # the seed projects' fields (seed_health.py)

    limited = httpx.get(f"{production_server.url}/health", headers=bearer(QUERY_ONLY_KEY)).json()
    assert [(m["name"], m["aliases"]) for m in limited["models"]] == [(QUERY, [QUERY_ALIAS])]
    assert limited["memory"] is None and limited["cache"] is None  # process-wide: for unrestricted keys
    assert "system" not in limited and "backend" not in limited  # the seed fields name the default model
    assert STRICT not in str(limited) and RERANKER not in str(limited)


def test_the_openapi_docs_need_a_key(production_server):
    assert httpx.get(f"{production_server.url}/schema/openapi.json").status_code == 401
    response = httpx.get(f"{production_server.url}/schema/openapi.json", headers=bearer(ADMIN_KEY))
    assert response.status_code == 200 and "/v1/embeddings" in response.json()["paths"]


def test_metrics_take_only_the_metrics_key(production_server):
    url = f"{production_server.url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=bearer(ADMIN_KEY)).status_code == 401
    response = httpx.get(url, headers=bearer(METRICS_KEY))
    assert response.status_code == 200 and "gateway_requests_total" in response.text
    for path in ("/v1/models", "/schema/openapi.json"):  # and the metrics key opens nothing else
        assert httpx.get(f"{production_server.url}{path}", headers=bearer(METRICS_KEY)).status_code == 401


def test_rerank_routes_answer_401_in_the_cohere_shape(production_server):
    response = httpx.post(f"{production_server.url}/v1/rerank", headers=bearer("sk-wrong"),
                          json={"model": RERANKER, "query": "capital of France", "documents": DOCUMENTS})
    assert response.status_code == 401
    assert "API key" in response.json()["message"] and "error" not in response.json()


@pytest.mark.parametrize("make_client", [cohere.Client, cohere.ClientV2])
def test_cohere_sdk_rerank_needs_a_key_allowed_for_the_model(production_server, make_client):
    def rerank(key: str):
        sdk = make_client(base_url=production_server.url, api_key=key, timeout=60)
        return sdk.rerank(model=RERANKER, query="capital of France", documents=DOCUMENTS)

    assert sorted(r.index for r in rerank(ADMIN_KEY).results) == [0, 1]
    with pytest.raises(cohere.errors.UnauthorizedError):
        rerank("sk-wrong")
    with pytest.raises(cohere.errors.ForbiddenError):
        rerank(QUERY_ONLY_KEY)


@pytest.mark.parametrize("make_client", [cohere.Client, cohere.ClientV2])
def test_cohere_sdk_embed_needs_a_key_allowed_for_the_model(production_server, make_client):
    def embed(key: str, model: str):
        sdk = make_client(base_url=production_server.url, api_key=key, timeout=60)
        return sdk.embed(model=model, texts=["hello"], input_type="search_query", embedding_types=["float"])

    assert len(embed(QUERY_ONLY_KEY, QUERY).embeddings.float_[0]) == 384
    with pytest.raises(cohere.errors.UnauthorizedError):
        embed("sk-wrong", QUERY)
    with pytest.raises(cohere.errors.ForbiddenError):
        embed(QUERY_ONLY_KEY, STRICT)
