"""Every error path of the OpenAI routes: status, the OpenAI error shape, and the SDK's exception."""

from __future__ import annotations

import httpx
import openai
import pytest

from compat_tests.conftest import DEFAULT_MODEL

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base, api_key="unused", max_retries=0)


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["param"] == param
    return error


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": ["ok", "  "]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": ["text", 42]}, "input"),
        ({"input": [[1, 2], "text"]}, "input"),
        ({"input": [10**9]}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": 385}, "dimensions"),
        ({"input": "x", "dimensions": -3}, "dimensions"),
    ],
)
def test_bad_input_is_a_400_bad_request_error(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=DEFAULT_MODEL, **kwargs)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param
    assert info.value.body["type"] == "invalid_request_error"


def test_unknown_model_is_a_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert info.value.body["code"] == "model_not_found"
    assert info.value.body["param"] == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "all-MiniLM-L6-v2", "input": ', None),  # malformed JSON
        (b"", None),
        (b"[1, 2]", None),
        (b'{"input": "x"}', "model"),
        (b'{"model": "all-MiniLM-L6-v2"}', "input"),
        (b'{"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "int4"}', "encoding_format"),
        (b'{"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": "many"}', "dimensions"),
        (b'{"model": "all-MiniLM-L6-v2", "input": {"text": "x"}}', "input"),
        (b'{"model": 7, "input": "x"}', "model"),
    ],
)
def test_raw_body_errors_are_400_in_openai_shape(server, body, param):
    response = httpx.post(f"{server.url}/v1/embeddings", content=body, headers=JSON)
    assert_openai_error(response, 400, param)


def test_wrong_content_type_is_415(server):
    response = httpx.post(f"{server.url}/v1/embeddings", content=b'{"model":"x","input":"y"}',
                          headers={"content-type": "text/plain"})
    assert_openai_error(response, 415)


def test_unknown_route_and_method(server):
    assert_openai_error(httpx.get(f"{server.url}/v1/nothing-here"), 404)
    assert_openai_error(httpx.post(f"{server.url}/v1/completions", json={}), 404)
    assert_openai_error(httpx.delete(f"{server.url}/v1/embeddings"), 405)
    assert_openai_error(httpx.get(f"{server.url}/v1/embeddings"), 405)


def test_oversized_body_is_413(server):
    body = b'{"model": "all-MiniLM-L6-v2", "input": "' + b"a" * (65 * 1024 * 1024) + b'"}'
    response = httpx.post(f"{server.url}/v1/embeddings", content=body,
                          headers={"content-type": "application/json"}, timeout=60)
    assert_openai_error(response, 413)


def test_server_keeps_serving_after_errors(client, server):
    for _ in range(3):
        httpx.post(f"{server.url}/v1/embeddings", content=b"{{{", headers=JSON)
    assert len(client.embeddings.create(model=DEFAULT_MODEL, input="still alive").data) == 1
    assert httpx.get(f"{server.url}/ready").status_code == 200


def test_health_ready_and_openapi(server):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    assert health["models"][0]["state"] == "ready"
    assert httpx.get(f"{server.url}/ready").json() == {"ready": True}
    schema = httpx.get(f"{server.url}/schema/openapi.json").json()
    assert "/v1/embeddings" in schema["paths"]
