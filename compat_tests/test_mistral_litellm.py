"""Mistral's SDK and LiteLLM (as an OpenAI and a Cohere upstream) against the server, unchanged but for the
base URL: vectors checked against the OpenAI route, order, types, errors."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.dialects import openai_route, openai_tokens, post
from compat_tests.embed_reference import requantize
from compat_tests.test_ollama import QUERY_DOCS
from compat_tests.test_openai_embeddings import TEXTS, cosines

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price list


@pytest.fixture(scope="module")
def mistral(server):
    from mistralai.client import Mistral

    return Mistral(api_key="unused", server_url=server.url)


def test_mistral_embeddings(mistral, server):
    response = mistral.embeddings.create(model=DEFAULT_MODEL, inputs=TEXTS)
    assert response.id.startswith("embd-") and response.object == "list" and response.model == DEFAULT_MODEL
    assert [row.index for row in response.data] == list(range(len(TEXTS)))
    got = np.array([row.embedding for row in response.data])
    assert cosines(got, openai_route(server, TEXTS, DEFAULT_MODEL)).min() >= 0.9999
    assert response.usage.prompt_tokens == response.usage.total_tokens == openai_tokens(server, TEXTS,
                                                                                        DEFAULT_MODEL)
    single = asyncio.run(mistral.embeddings.create_async(model=DEFAULT_ALIAS, inputs=TEXTS[1]))
    assert cosines([single.data[0].embedding], got[1:2])[0] >= 0.9999


def test_mistral_output_dtype_and_dimension(mistral, server):
    response = mistral.embeddings.create(model=DEFAULT_MODEL, inputs=TEXTS[:2], output_dtype="int8",
                                         output_dimension=64, metadata={"source": "test"})
    small = openai_route(server, TEXTS[:2], DEFAULT_MODEL, dimensions=64).astype(np.float32)
    np.testing.assert_array_equal(np.array([row.embedding for row in response.data]),
                                  requantize(small, "int8"))


def test_mistral_errors(mistral):
    from mistralai.client.errors import SDKError

    with pytest.raises(SDKError) as info:
        mistral.embeddings.create(model="mistral-embed", inputs=["x"])
    assert info.value.status_code == 404 and "mistral-embed" in info.value.body
    with pytest.raises(SDKError) as info:
        mistral.embeddings.create(model=DEFAULT_MODEL, inputs=["x"], output_dimension=0)
    assert info.value.status_code == 400 and "output_dimension" in info.value.body


def test_litellm_embedding_as_an_openai_upstream(server):
    import litellm

    response = litellm.embedding(model=f"openai/{DEFAULT_MODEL}", input=TEXTS, api_base=server.openai_base,
                                 api_key="unused")
    got = np.array([row["embedding"] for row in response.data])
    assert [row["index"] for row in response.data] == list(range(len(TEXTS)))
    assert isinstance(response.data[0]["embedding"][0], float)
    assert cosines(got, openai_route(server, TEXTS, DEFAULT_MODEL)).min() >= 0.9999
    assert response.usage.prompt_tokens == openai_tokens(server, TEXTS, DEFAULT_MODEL)
    async_response = asyncio.run(litellm.aembedding(  # LiteLLM sends dimensions only for OpenAI's v3 models
        model=f"openai/{DEFAULT_ALIAS}", input=TEXTS[:2], api_base=server.openai_base, api_key="unused",
        dimensions=64, allowed_openai_params=["dimensions"]))
    small = np.array([row["embedding"] for row in async_response.data])
    assert cosines(small, openai_route(server, TEXTS[:2], DEFAULT_ALIAS, dimensions=64)).min() >= 0.9999


def test_litellm_embedding_errors(server):
    import litellm

    with pytest.raises(litellm.NotFoundError):
        litellm.embedding(model="openai/text-embedding-3-small", input=["x"], api_base=server.openai_base,
                          api_key="unused", max_retries=0)
    with pytest.raises(litellm.BadRequestError, match="dimensions"):
        litellm.embedding(model=f"openai/{DEFAULT_MODEL}", input=["x"], api_base=server.openai_base,
                          api_key="unused", dimensions=1000, allowed_openai_params=["dimensions"],
                          max_retries=0)


def test_litellm_rerank_as_a_cohere_upstream(server):
    import litellm

    query, documents = QUERY_DOCS
    response = litellm.rerank(model=f"cohere/{DEFAULT_MODEL}", query=query, documents=documents, top_n=2,
                              api_base=server.url, api_key="unused")
    cohere = post(server, "/v2/rerank", {"model": DEFAULT_MODEL, "query": query, "documents": documents,
                                         "top_n": 2}).json()
    assert [(r["index"], r["relevance_score"]) for r in response.results] == \
        [(r["index"], r["relevance_score"]) for r in cohere["results"]]
    assert response.results[0]["document"] == {"text": documents[1]}
    with pytest.raises(Exception, match="does not exist"):  # LiteLLM maps Cohere rerank errors its own way
        litellm.rerank(model="cohere/rerank-v3.5", query=query, documents=documents, api_base=server.url,
                       api_key="unused")
