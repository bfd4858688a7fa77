"""Voyage's API through the ``voyageai`` SDK and raw HTTP: ``embed`` with every ``output_dtype`` (the SDK asks
for base64 and decodes it), ``input_type`` prompts, ``truncation``, ``output_dimension``; ``rerank`` on
``/v1/rerank`` beside Cohere's body; errors with the ``detail`` the SDK reads."""

from __future__ import annotations

import numpy as np
import pytest
import voyageai
import voyageai.error

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.dialects import openai_route, openai_tokens, post
from compat_tests.embed_reference import LONG_TEXT, check_bits, reference_vectors, requantize
from compat_tests.production import ADMIN_KEY, QUERY, QUERY_PROMPT
from compat_tests.test_ollama import QUERY_DOCS
from compat_tests.test_openai_embeddings import TEXTS, cosines


@pytest.fixture(scope="module")
def client(server) -> voyageai.Client:
    return voyageai.Client(api_key="unused", base_url=server.openai_base, max_retries=0, timeout=60)


@pytest.mark.parametrize("output_dtype", [None, "float", "int8", "uint8", "binary", "ubinary"])
def test_embed_every_output_dtype(client, server, output_dtype):
    result = client.embed(TEXTS, model=DEFAULT_MODEL, output_dtype=output_dtype)
    floats = openai_route(server, TEXTS, DEFAULT_MODEL).astype(np.float32)
    got = np.array(result.embeddings)
    assert result.total_tokens == openai_tokens(server, TEXTS, DEFAULT_MODEL)
    if output_dtype in (None, "float"):
        assert isinstance(result.embeddings[0][0], float) and cosines(got, floats).min() >= 0.9999
        return
    assert all(isinstance(value, int) for value in result.embeddings[0])
    np.testing.assert_array_equal(got, requantize(floats, output_dtype))
    if output_dtype == "ubinary":
        check_bits(floats, got)


def test_explicit_float_encoding_and_output_dimension(server):
    """Without the SDK's base64: integer lists, and Matryoshka sizes as on the OpenAI route."""
    body = post(server, "/v1/embeddings", {"model": DEFAULT_ALIAS, "input": TEXTS[:2], "output_dtype": "int8",
                                           "output_dimension": 128, "encoding_format": None}).json()
    rows = np.array([row["embedding"] for row in body["data"]])
    small = openai_route(server, TEXTS[:2], DEFAULT_ALIAS, dimensions=128).astype(np.float32)
    np.testing.assert_array_equal(rows, requantize(small, "int8"))


def test_input_type_and_truncation(client, server, reference_model):
    query = client.embed(TEXTS[:2], model=DEFAULT_MODEL, input_type="query")  # MiniLM has no prompts
    assert cosines(query.embeddings, reference_vectors(reference_model, TEXTS[:2])).min() >= 0.9999
    with pytest.raises(voyageai.error.InvalidRequestError, match="256"):
        client.embed(["short", LONG_TEXT], model=DEFAULT_MODEL, truncation=False)
    cut = client.embed([LONG_TEXT], model=DEFAULT_MODEL, truncation=True)
    assert cosines(cut.embeddings, reference_vectors(reference_model, [LONG_TEXT]))[0] >= 0.9999


def test_input_type_selects_the_configured_prompt(production_server, reference_model):
    client = voyageai.Client(api_key=ADMIN_KEY, base_url=f"{production_server.url}/v1", max_retries=0)
    queries = client.embed(TEXTS[:2], model=QUERY, input_type="query").embeddings
    documents = client.embed(TEXTS[:2], model=QUERY, input_type="document").embeddings
    assert cosines(queries, reference_vectors(reference_model, [QUERY_PROMPT + t for t in TEXTS[:2]])).min() \
        >= 0.9999
    assert cosines(documents, reference_vectors(reference_model, TEXTS[:2])).min() >= 0.9999


def test_rerank_matches_the_cohere_answer_on_the_same_path(client, server):
    query, documents = QUERY_DOCS
    result = client.rerank(query, documents, model=DEFAULT_MODEL, top_k=2)
    cohere = post(server, "/v1/rerank", {"model": DEFAULT_MODEL, "query": query,
                                         "documents": documents}).json()
    assert "id" in cohere and "meta" in cohere and "object" not in cohere  # Cohere's body: Cohere's shape
    assert [(r.index, r.relevance_score) for r in result.results] == \
        [(r["index"], r["relevance_score"]) for r in cohere["results"][:2]]
    assert result.results[0].document == documents[1]
    assert result.total_tokens == cohere["usage"]["total_tokens"]
    raw = post(server, "/v1/rerank", {"model": DEFAULT_MODEL, "query": query, "documents": documents,
                                      "top_k": None, "return_documents": True, "truncation": None}).json()
    assert raw["object"] == "list" and raw["model"] == DEFAULT_MODEL and len(raw["data"]) == 3
    assert raw["data"][0]["document"] == documents[1]


def test_rerank_truncation(client):
    query, documents = QUERY_DOCS[0], ["Paris is the capital of France. " + LONG_TEXT, "Bananas."]
    assert client.rerank(query, documents, model=DEFAULT_MODEL).results[0].index == 0  # truncated, kept
    with pytest.raises(voyageai.error.InvalidRequestError, match="documents"):
        client.rerank(query, documents, model=DEFAULT_MODEL, truncation=False)


ERRORS = {
    "unknown output_dtype": ("/v1/embeddings", {"input": ["x"], "output_dtype": "int4"}, "output_dtype"),
    "unknown input_type": ("/v1/embeddings", {"input": ["x"], "input_type": "search_query"}, "input_type"),
    "bits of an odd size": ("/v1/embeddings", {"input": ["x"], "output_dtype": "binary",
                                               "output_dimension": 100}, "output_dtype"),
    "output_dimension out of range": ("/v1/embeddings", {"input": ["x"], "output_dimension": 0},
                                      "output_dimension"),
    "output_dimension against dimensions": ("/v1/embeddings", {"input": ["x"], "output_dimension": 64,
                                                               "dimensions": 32}, "output_dimension"),
    "too long without truncation": ("/v1/embeddings", {"input": [LONG_TEXT], "truncation": False}, "input"),
    "rerank top_k": ("/v1/rerank", {"query": "q", "documents": ["a"], "top_k": 0}, "top_k"),
    "rerank documents not strings": ("/v1/rerank", {"query": "q", "documents": [{"text": "a"}], "top_k": 1},
                                     "documents"),
    "rerank no documents": ("/v1/rerank", {"query": "q", "documents": [], "truncation": True}, "documents"),
}


@pytest.mark.parametrize("path, body, param", ERRORS.values(), ids=ERRORS.keys())
def test_errors_carry_the_detail_voyage_reads(server, path, body, param):
    response = post(server, path, {"model": DEFAULT_MODEL, **body})
    assert response.status_code == 400, response.text
    assert param in response.json()["detail"]
    if path == "/v1/embeddings":
        assert response.json()["error"]["param"] == param


def test_sdk_raises_its_errors_and_server_keeps_serving(client):
    with pytest.raises(voyageai.error.InvalidRequestError, match="output_dimension"):
        client.embed(["x"], model=DEFAULT_MODEL, output_dimension=1000)
    with pytest.raises(voyageai.error.APIError, match="does not exist"):  # the SDK has no 404 class
        client.embed(["x"], model="voyage-3")
    assert len(client.embed(["still serving"], model=DEFAULT_MODEL).embeddings[0]) == 384
