"""Every limit hit on purpose through the real server, each answered in the called route's error shape:
body size (413), inputs and tokens per request (400), request timeout (408), CORS origins, trusted hosts.

The server runs with no API keys (open) and tiny limits. A second one has a 1 ms request timeout: every
request times out there, since its one deadline covers tokenizing too (the token limit is checked once
tokens are known, so it shares no server with that timeout).
"""

from __future__ import annotations

import httpx
import openai
import pytest

from compat_tests.conftest import DEFAULT_ALIAS
from compat_tests.server import RunningServer, run_server

MAX_BODY_BYTES, MAX_INPUTS, MAX_TOKENS = 20_000, 8, 1000
ORIGIN = "https://app.example.com"
PARAGRAPH = " ".join(f"word{i}" for i in range(100))  # about 200 model tokens
RERANK_BODY = {"model": DEFAULT_ALIAS, "query": "q", "documents": ["d"]}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    env = {
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "GATEWAY_MAX_INPUTS_PER_REQUEST": str(MAX_INPUTS),
        "GATEWAY_MAX_TOKENS_PER_REQUEST": str(MAX_TOKENS),
        "GATEWAY_ALLOWED_ORIGINS": ORIGIN,
        "GATEWAY_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    with run_server(tmp_path_factory.mktemp("limited-server"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    env = {"GATEWAY_REQUEST_TIMEOUT_S": "0.001"}
    with run_server(tmp_path_factory.mktemp("impatient-server"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def client(limited) -> openai.OpenAI:
    return openai.OpenAI(base_url=limited.openai_base, api_key="unused", max_retries=0)


def openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def big_body() -> bytes:
    return httpx.Request("POST", "/", json={"model": DEFAULT_ALIAS, "input": ["x" * MAX_BODY_BYTES]}).read()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413_in_the_openai_shape(limited, chunked):
    body = big_body()
    content = iter([body[:1000], body[1000:]]) if chunked else body  # chunked: no Content-Length
    response = httpx.post(f"{limited.url}/v1/embeddings", content=content,
                          headers={"Content-Type": "application/json"})
    assert openai_error(response, 413)["code"] == "payload_too_large"


@pytest.mark.parametrize(("path", "message_key"), [("/v1/rerank", "message"), ("/v2/embed", "message"),
                                                    ("/embed", "error")])
def test_a_body_over_the_limit_is_413_in_each_route_shape(limited, path, message_key):
    response = httpx.post(f"{limited.url}{path}", content=big_body(),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    body = response.json()
    assert isinstance(body[message_key], str) and "too large" in body[message_key]  # Cohere / TEI, not OpenAI


def test_too_many_inputs_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=DEFAULT_ALIAS, input=["x"] * (MAX_INPUTS + 1))
    assert caught.value.body["param"] == "input" and str(MAX_INPUTS) in caught.value.message


def test_too_many_tokens_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=DEFAULT_ALIAS, input=[PARAGRAPH] * MAX_INPUTS)
    assert caught.value.body["param"] == "input" and str(MAX_TOKENS) in caught.value.message


def test_a_request_over_the_timeout_is_408(impatient):
    client = openai.OpenAI(base_url=impatient.openai_base, api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.embeddings.create(model=DEFAULT_ALIAS, input=[PARAGRAPH] * 4)  # within every other limit
    assert caught.value.status_code == 408
    assert caught.value.body["code"] == "request_timeout"
    assert httpx.get(f"{impatient.url}/health").json()["status"] == "ok"  # and the server is fine


def test_cors_allows_the_configured_origin_only(limited):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{limited.url}/v1/embeddings", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    simple = httpx.get(f"{limited.url}/v1/models", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    other = httpx.get(f"{limited.url}/v1/models", headers={"Origin": "https://evil.example.org"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    rejected = httpx.options(f"{limited.url}/v1/embeddings", headers={"Origin": "https://evil.example.org",
                                                                    **preflight})
    assert "access-control-allow-origin" not in rejected.headers


def test_an_untrusted_host_is_400_in_the_route_shape(limited):
    evil = {"Host": "evil.example.org"}
    body = {"model": DEFAULT_ALIAS, "input": "x"}
    response = httpx.post(f"{limited.url}/v1/embeddings", headers=evil, json=body)
    assert openai_error(response, 400)["code"] == "invalid_host"
    response = httpx.post(f"{limited.url}/v1/rerank", headers=evil, json=RERANK_BODY)
    assert response.status_code == 400 and "host" in response.json()["message"]
    assert httpx.get(f"{limited.url}/ready", headers=evil).status_code == 200  # probes come by IP
    port = limited.url.rsplit(":", 1)[1]
    assert httpx.get(f"{limited.url}/v1/models", headers={"Host": f"localhost:{port}"}).status_code == 200
