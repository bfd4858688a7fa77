"""Per-key rate limits through the real server and the default model: the openai SDK's ``RateLimitError``
with OpenAI's headers, tokens counted as usage counts them and refused before the model runs, the 429 in
Cohere's and TEI's shapes, untouched neighbours, and per-key metrics.

Each test spends the quota of its own key (the windows are a minute long and nothing here sleeps).
"""

from __future__ import annotations

import secrets

import cohere
import httpx
import openai
import pytest

from compat_tests.conftest import DEFAULT_ALIAS
from compat_tests.production import bearer, scrape
from compat_tests.server import RunningServer, run_server

DEFAULT_RPM = 1000
KEYS = {name: f"sk-{name}-{secrets.token_hex(8)}" for name in
        ("sdk", "neighbour", "tokens", "rerank", "cohere", "tei", "metered", "score")}
TPM, RERANK_TPM = 20, 40
OWN = {"sdk": "rpm = 2", "tokens": f"tpm = {TPM}", "rerank": f"tpm = {RERANK_TPM}", "cohere": "rpm = 1",
       "tei": "rpm = 1", "metered": "rpm = 1", "score": f"tpm = {RERANK_TPM}"}
TEXT = "one two three four five six"  # 8 model tokens with [CLS] and [SEP]


def write_config(path) -> None:
    tables = "".join(f'\n[[api_keys]]\nkey = "{secret}"\nname = "{name}"\n{OWN.get(name, "")}\n'
                     for name, secret in KEYS.items())
    path.write_text(f"rate_limit_rpm = {DEFAULT_RPM}\n{tables}")  # top-level keys before any table


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    workdir = tmp_path_factory.mktemp("rate-limited-server")
    write_config(workdir / "limits.toml")
    with run_server(workdir, args=["--config", str(workdir / "limits.toml")]) as running:
        yield running


def sdk(server: RunningServer, name: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base, api_key=KEYS[name], max_retries=0)


def test_the_openai_sdk_gets_a_rate_limit_error_with_openai_headers(limited):
    client = sdk(limited, "sdk")
    remaining = []
    for _ in range(2):
        raw = client.embeddings.with_raw_response.create(model=DEFAULT_ALIAS, input="hello")
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no tpm configured for this key
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert len(raw.parse().data) == 1
    assert remaining == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=DEFAULT_ALIAS, input="hello")
    error = refused.value
    assert error.status_code == 429
    assert error.body["code"] == "rate_limit_exceeded" and error.body["type"] == "requests"
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60 and 0 < int(headers["retry-after-ms"]) <= 60_000
    assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-ratelimit-limit-requests"] == "2"
    # another key has its own quota (the default rpm), and model lists are never limited
    other = sdk(limited, "neighbour").embeddings.with_raw_response.create(model=DEFAULT_ALIAS, input="hi")
    assert other.headers["x-ratelimit-limit-requests"] == str(DEFAULT_RPM)
    assert other.headers["x-ratelimit-remaining-requests"] == str(DEFAULT_RPM - 1)
    listed = client.models.with_raw_response.list()
    assert listed.http_response.status_code == 200 and "x-ratelimit-limit-requests" not in listed.headers


def test_tokens_are_the_usage_tokens_and_a_request_over_the_rest_never_reaches_the_model(limited):
    client = sdk(limited, "tokens")
    first = client.embeddings.with_raw_response.create(model=DEFAULT_ALIAS, input=TEXT)
    used = first.parse().usage.prompt_tokens
    assert 2 * used <= TPM < 3 * used, "TEXT no longer fits the test's quota"
    assert first.headers["x-ratelimit-limit-tokens"] == str(TPM)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(TPM - used)
    client.embeddings.create(model=DEFAULT_ALIAS, input=TEXT)
    inputs_before = model_inputs(limited)
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=DEFAULT_ALIAS, input=TEXT)
    assert refused.value.body["type"] == "tokens"
    assert f"Limit {TPM}, Used {2 * used}, Requested {used}" in refused.value.body["message"]
    assert refused.value.response.headers["x-ratelimit-remaining-tokens"] == str(TPM - 2 * used)
    assert model_inputs(limited) == inputs_before  # refused before the model ran
    small = client.embeddings.with_raw_response.create(model=DEFAULT_ALIAS, input="hi")  # fits the rest
    left = TPM - 2 * used - small.parse().usage.prompt_tokens
    assert small.headers["x-ratelimit-remaining-tokens"] == str(left)


def test_rerank_tokens_are_charged_as_its_usage_counts_them(limited):
    url, headers = f"{limited.url}/v1/rerank", bearer(KEYS["rerank"])
    body = {"model": DEFAULT_ALIAS, "query": "q", "documents": ["d one", "d two"]}
    response = httpx.post(url, headers=headers, json=body)
    assert response.status_code == 200, response.text
    used = response.json()["usage"]["total_tokens"]
    assert response.headers["x-ratelimit-remaining-tokens"] == str(RERANK_TPM - used)
    big = {**body, "documents": [TEXT] * 8}  # more than the whole quota
    refused = httpx.post(url, headers=headers, json=big)
    assert refused.status_code == 429 and "error" not in refused.json()  # Cohere's (+ Jina's detail)
    assert "tokens per min" in refused.json()["message"]


def test_vllm_score_tokens_are_charged_as_its_usage_counts_them(limited):
    url, headers = f"{limited.url}/score", bearer(KEYS["score"])
    body = {"model": DEFAULT_ALIAS, "text_1": "q", "text_2": ["d one", "d two"]}
    response = httpx.post(url, headers=headers, json=body)
    assert response.status_code == 200, response.text
    used = response.json()["usage"]["prompt_tokens"]
    assert response.headers["x-ratelimit-remaining-tokens"] == str(RERANK_TPM - used)
    refused = httpx.post(url, headers=headers, json={**body, "text_2": [TEXT + f" {i}" for i in range(8)]})
    assert refused.status_code == 429 and refused.json()["object"] == "error"  # vLLM's shape
    assert "tokens per min" in refused.json()["message"]


def test_cohere_routes_answer_429_in_cohere_shape_and_the_sdk_raises(limited):
    url, headers = f"{limited.url}/v2/embed", bearer(KEYS["cohere"])
    body = {"model": DEFAULT_ALIAS, "texts": ["hello"], "input_type": "search_query",
            "embedding_types": ["float"]}
    ok = httpx.post(url, headers=headers, json=body)
    assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining-requests"] == "0"
    refused = httpx.post(url, headers=headers, json=body)
    assert refused.status_code == 429 and set(refused.json()) == {"message"}
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["x-ratelimit-limit-requests"] == "1"
    client = cohere.ClientV2(base_url=limited.url, api_key=KEYS["cohere"], timeout=60)
    with pytest.raises(cohere.errors.TooManyRequestsError):
        client.embed(model=DEFAULT_ALIAS, texts=["hello"], input_type="search_query",
                     embedding_types=["float"], request_options={"max_retries": 0})


def test_tei_routes_answer_429_in_tei_shape(limited):
    headers = bearer(KEYS["tei"])
    assert httpx.post(f"{limited.url}/embed", headers=headers, json={"inputs": "hi"}).status_code == 200
    refused = httpx.post(f"{limited.url}/embed", headers=headers, json={"inputs": "hi"})
    assert refused.status_code == 429
    assert refused.json()["error_type"] == "Overloaded" and "requests per min" in refused.json()["error"]


def test_limits_and_usage_are_metrics_by_key_name(limited):
    client = sdk(limited, "metered")
    used = client.embeddings.create(model=DEFAULT_ALIAS, input=TEXT).usage.prompt_tokens
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=DEFAULT_ALIAS, input=TEXT)
    response = httpx.get(f"{limited.url}/metrics", headers=bearer(KEYS["neighbour"]))
    assert not any(secret in response.text for secret in KEYS.values())
    samples = scrape(limited, KEYS["neighbour"])

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    assert value("gateway_rate_limit_rpm", key="metered") == 1
    assert value("gateway_rate_limit_rpm", key="neighbour") == DEFAULT_RPM  # the default quota
    assert value("gateway_rate_limit_tpm", key="tokens") == TPM
    assert value("gateway_rate_limit_tpm", key="metered") is None  # no tpm for this key
    assert value("gateway_rate_limited_requests_total", key="metered") == 1
    assert value("gateway_rate_limited_tokens_total", key="metered") == used
    assert value("gateway_rate_limit_rejections_total", key="metered", limit="requests") == 1
    assert value("gateway_rate_limit_rejections_total", key="metered", limit="tokens") == 0


def model_inputs(server: RunningServer) -> float:
    """Sequences sent to any model so far (``gateway_inputs_total`` summed)."""
    samples = scrape(server, KEYS["neighbour"])
    return sum(v for (name, _), v in samples.items() if name == "gateway_inputs_total")


def test_without_keys_every_client_shares_one_quota(tmp_path):
    with run_server(tmp_path, env={"GATEWAY_RATE_LIMIT_RPM": "1"}) as open_server:
        first = sdk_open(open_server, "anything").embeddings.with_raw_response.create(model=DEFAULT_ALIAS,
                                                                                      input="hi")
        assert first.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as refused:  # another client: the same quota
            sdk_open(open_server, "something-else").embeddings.create(model=DEFAULT_ALIAS, input="hi")
        assert "all clients" in refused.value.body["message"]


def sdk_open(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base, api_key=key, max_retries=0)
