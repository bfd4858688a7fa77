"""Every rerank error path: status, body shape (Cohere's ``{"message"}``, TEI's ``{"error", "error_type"}``),
through raw HTTP and the cohere SDK; the server keeps serving afterwards."""

from __future__ import annotations

import cohere
import httpx
import pytest

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.rerank_reference import FILLER, PASSAGES, QUERY, RELEVANT

PATHS = ["/v1/rerank", "/v2/rerank", "/rerank"]
GOOD = {"model": DEFAULT_MODEL, "query": QUERY, "documents": PASSAGES}

# (body changes, status, text the message must contain)
COHERE_CASES = {
    "top_n zero": ({"top_n": 0}, 400, "top_n"),
    "top_n negative": ({"top_n": -3}, 400, "top_n"),
    "top_n wrong type": ({"top_n": "two"}, 400, "top_n"),
    "empty query": ({"query": ""}, 400, "query"),
    "blank query": ({"query": "   "}, 400, "query"),
    "query wrong type": ({"query": 3}, 400, "query"),
    "missing query": ({"query": None}, 400, "query"),
    "missing documents": ({"documents": None}, 400, "documents"),
    "empty documents": ({"documents": []}, 400, "documents"),
    "documents not a list": ({"documents": "Paris"}, 400, "documents"),
    "document of wrong type": ({"documents": ["ok", 5]}, 400, "documents[1]"),
    "object without text": ({"documents": [{"title": "Paris"}]}, 400, "documents[0]"),
    "text not a string": ({"documents": [{"text": ["Paris"]}]}, 400, "documents[0]"),
    "rank field missing": (
        {"documents": [{"title": "a", "body": "b"}], "rank_fields": ["title", "url"]},
        400,
        "url",
    ),
    "return_documents wrong type": ({"return_documents": "yes"}, 400, "return_documents"),
    "max_chunks_per_doc zero": ({"max_chunks_per_doc": 0}, 400, "max_chunks_per_doc"),
    "max_tokens_per_doc negative": ({"max_tokens_per_doc": -1}, 400, "max_tokens_per_doc"),
    "unknown model": ({"model": "no-such-reranker"}, 404, "no-such-reranker"),
}


def assert_cohere_error(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "detail"} and body["detail"] == body["message"]
    assert needle in body["message"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(COHERE_CASES))
def test_bad_cohere_and_jina_bodies(server, path, case):
    changes, status, needle = COHERE_CASES[case]
    body = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    assert_cohere_error(httpx.post(server.url + path, json=body, timeout=60), status, needle)


def test_more_documents_than_the_limit(server):
    body = {**GOOD, "documents": ["a"] * 10_001}
    assert_cohere_error(httpx.post(f"{server.url}/v1/rerank", json=body, timeout=60), 400, "10000")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "empty"), (b'{"query": "x", "documents": [', "parse"), (b"[1, 2]", "body"), (b"null", "body")],
)
def test_unparseable_bodies(server, path, content, needle):
    response = httpx.post(server.url + path, content=content, headers={"content-type": "application/json"})
    assert_cohere_error(response, 400, needle)


@pytest.mark.parametrize("path", PATHS)
def test_wrong_method_and_content_type(server, path):
    assert_cohere_error(httpx.get(server.url + path), 405, "not allowed")
    response = httpx.post(server.url + path, content=b"query=x", headers={"content-type": "text/plain"})
    assert_cohere_error(response, 415, "Content-Type")


TEI_CASES = {
    "empty texts": ({"texts": []}, 400, "texts"),
    "empty query": ({"query": ""}, 400, "query"),
    "texts of wrong type": ({"texts": ["a", 1]}, 400, "texts[1]"),
    "truncate wrong type": ({"truncate": "yes"}, 400, "truncate"),
    "bad truncation_direction": ({"truncation_direction": "Up"}, 400, "truncation_direction"),
    "too long without truncation": ({"texts": ["short", FILLER], "truncate": False}, 400, "texts[1]"),
    "unknown model": ({"model": "no-such-reranker"}, 404, "no-such-reranker"),
}


@pytest.mark.parametrize("case", list(TEI_CASES))
def test_bad_tei_bodies_answer_in_tei_shape(server, case):
    changes, status, needle = TEI_CASES[case]
    body = {"query": QUERY, "texts": PASSAGES, **changes}
    response = httpx.post(f"{server.url}/rerank", json=body, timeout=60)
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error", "error_type"} and payload["error_type"] == "Validation"
    assert needle in payload["error"]


def test_cohere_sdk_raises_typed_errors_with_the_message(server):
    v1 = cohere.Client(base_url=server.url, api_key="x")
    with pytest.raises(cohere.BadRequestError) as bad:
        v1.rerank(model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES, top_n=0)
    assert "top_n" in bad.value.body["message"]
    v2 = cohere.ClientV2(base_url=server.url, api_key="x")
    with pytest.raises(cohere.NotFoundError) as missing:
        v2.rerank(model="no-such-reranker", query=QUERY, documents=PASSAGES)
    assert "no-such-reranker" in missing.value.body["message"]
    with pytest.raises(cohere.BadRequestError):
        v2.rerank(model=DEFAULT_MODEL, query="", documents=PASSAGES)


def test_server_keeps_serving_after_errors(server):
    for path in PATHS:
        httpx.post(server.url + path, content=b"{", headers={"content-type": "application/json"})
        httpx.post(server.url + path, json={**GOOD, "top_n": -1})
    response = cohere.Client(base_url=server.url, api_key="x").rerank(
        model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES
    )
    assert response.results[0].index == RELEVANT
    assert httpx.get(f"{server.url}/ready").status_code == 200
