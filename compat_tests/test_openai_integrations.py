"""LangChain ``OpenAIEmbeddings`` (token-id input by default) and LlamaIndex ``OpenAIEmbedding``."""

from __future__ import annotations

import numpy as np

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.test_openai_embeddings import TEXTS, cosines


def test_langchain_openai_embeddings_default_settings(server, reference_model):
    from langchain_openai import OpenAIEmbeddings

    # Defaults: check_embedding_ctx_length=True, so LangChain sends cl100k token ids, not text.
    embeddings = OpenAIEmbeddings(model=DEFAULT_MODEL, base_url=server.openai_base, api_key="unused")
    got = np.array(embeddings.embed_documents(TEXTS))
    assert cosines(got, reference_model.encode(TEXTS)).min() >= 0.9999
    query = np.array([embeddings.embed_query("what is the capital of France?")])
    assert cosines(query, reference_model.encode(["what is the capital of France?"]))[0] >= 0.9999


def test_langchain_sends_token_ids(server):
    from langchain_openai import OpenAIEmbeddings

    seen = []
    import httpx

    def record(request: httpx.Request) -> None:
        seen.append(request.read())

    client = httpx.Client(event_hooks={"request": [record]})
    embeddings = OpenAIEmbeddings(model=DEFAULT_MODEL, base_url=server.openai_base, api_key="unused",
                                  http_client=client)
    embeddings.embed_documents(["token ids please"])
    assert b'"input":[[' in seen[0].replace(b" ", b"")


def test_llamaindex_openai_embedding(server, reference_model):
    from llama_index.embeddings.openai import OpenAIEmbedding

    embedding = OpenAIEmbedding(model_name=DEFAULT_MODEL, api_base=server.openai_base, api_key="unused")
    got = np.array(embedding.get_text_embedding_batch(TEXTS))
    assert cosines(got, reference_model.encode(TEXTS)).min() >= 0.9999
    query = np.array([embedding.get_query_embedding("where is Paris?")])
    assert cosines(query, reference_model.encode(["where is Paris?"]))[0] >= 0.9999
