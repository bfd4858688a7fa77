"""Jina's embeddings API on the OpenAI route, through LlamaIndex's ``JinaEmbedding`` and raw HTTP: ``task``,
``embedding_type`` (and its older name ``encoding_type``), ``normalized``, ``truncate``, ``dimensions``,
``late_chunking`` (checked against transformers run in the test), and errors with ``detail``."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
import torch

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.dialects import openai_route, post
from compat_tests.embed_reference import LONG_TEXT, reference_vectors, requantize
from compat_tests.production import ADMIN_KEY, QUERY, QUERY_PROMPT, RERANKER, bearer
from compat_tests.test_openai_embeddings import TEXTS, cosines

CHUNKS = [
    "Berlin is the capital and largest city of Germany.",
    "Its more than 3.85 million inhabitants make it the most populous city of the European Union.",
    "The city is also one of the states of Germany.",
]


def jina(server, **options):
    """``JinaEmbedding`` pointed at the server. Version 0.7 takes no base URL argument: its API caller
    (which does) is replaced, the one way to aim it at another host."""
    from llama_index.embeddings.jinaai import JinaEmbedding
    from llama_index.embeddings.jinaai.base import _JinaAPICaller

    embedding = JinaEmbedding(model=DEFAULT_MODEL, api_key="unused", **options)
    embedding._api = _JinaAPICaller(model=DEFAULT_MODEL, base_url=server.openai_base, api_key="unused")
    return embedding


def late_chunked_reference(model, texts: list[str], prompt: str = "") -> np.ndarray:
    """Jina's late chunking done here: [CLS] prompt text1 text2 ... [SEP] through the transformer, each
    text's own token states averaged."""
    tokenizer = model.tokenizer
    pieces = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    ids = [tokenizer.cls_token_id]
    if prompt:
        ids += tokenizer(prompt, add_special_tokens=False)["input_ids"]
    spans = []
    for piece in pieces:
        spans.append((len(ids), len(ids) + len(piece)))
        ids += piece
    ids.append(tokenizer.sep_token_id)
    with torch.inference_mode():
        hidden = model[0].auto_model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return np.stack([hidden[a:b].mean(0).numpy() for a, b in spans])


def test_llama_index_jina_embedding(server):
    embedding = jina(server, task="retrieval.passage")
    expected = openai_route(server, TEXTS, DEFAULT_MODEL)
    assert cosines(embedding.get_text_embedding_batch(TEXTS), expected).min() >= 0.9999
    assert cosines([embedding.get_query_embedding(TEXTS[1])], expected[1:2])[0] >= 0.9999
    got = asyncio.run(embedding.aget_text_embedding_batch(TEXTS))
    assert cosines(got, expected).min() >= 0.9999
    small = jina(server, dimensions=64).get_text_embedding_batch(TEXTS[:2])
    assert cosines(small, openai_route(server, TEXTS[:2], DEFAULT_MODEL, dimensions=64)).min() >= 0.9999


@pytest.mark.parametrize("encoding", ["binary", "ubinary"])
def test_llama_index_bit_encodings_unpack_to_the_signs(server, encoding):
    """LlamaIndex sends ``encoding_type`` and unpacks the bits itself."""
    bits = jina(server, encoding_documents=encoding).get_text_embedding_batch(TEXTS)
    floats = openai_route(server, TEXTS, DEFAULT_MODEL)
    np.testing.assert_array_equal(np.array(bits).astype(bool), floats > 0)


def test_llama_index_late_chunking_matches_the_reference(server, reference_model):
    embedding = jina(server, late_chunking=True, task="retrieval.passage")
    got = np.array(embedding.get_text_embedding_batch(CHUNKS))
    assert cosines(got, late_chunked_reference(reference_model, CHUNKS)).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # the model normalizes
    alone = openai_route(server, CHUNKS, DEFAULT_MODEL)
    assert cosines(got, alone).max() < 0.999  # each chunk now carries its neighbours' context


@pytest.mark.parametrize("embedding_type", ["int8", "uint8", "binary", "ubinary"])
def test_integer_embedding_types(server, embedding_type):
    body = post(server, "/v1/embeddings", {"model": DEFAULT_MODEL, "input": TEXTS,
                                           "embedding_type": embedding_type}).json()
    floats = openai_route(server, TEXTS, DEFAULT_MODEL).astype(np.float32)
    np.testing.assert_array_equal(np.array([row["embedding"] for row in body["data"]]),
                                  requantize(floats, embedding_type))


def test_base64_normalized_and_truncate(server, reference_model):
    body = post(server, "/v1/embeddings", {"model": DEFAULT_MODEL, "input": TEXTS, "embedding_type": "base64",
                                           "normalized": True, "truncate": True}).json()
    decoded = np.array([np.frombuffer(base64.b64decode(row["embedding"]), "<f4") for row in body["data"]])
    np.testing.assert_array_equal(decoded, openai_route(server, TEXTS, DEFAULT_MODEL).astype(np.float32))
    raw = openai_route(server, TEXTS, DEFAULT_MODEL, normalized=False)
    tei_raw = post(server, "/embed", {"inputs": TEXTS, "normalize": False}).json()
    assert cosines(raw, tei_raw).min() >= 0.9999 and np.linalg.norm(raw, axis=1).min() > 1.5
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), np.linalg.norm(tei_raw, axis=1), rtol=1e-4)
    long = openai_route(server, [LONG_TEXT], DEFAULT_MODEL, truncate=True)
    assert cosines(long, reference_vectors(reference_model, [LONG_TEXT]))[0] >= 0.9999


def test_task_prompts_and_late_chunking_with_a_prompt(production_server, reference_model):
    def embed(texts, **fields):
        response = post(production_server, "/v1/embeddings", {"model": QUERY, "input": texts, **fields},
                        **bearer(ADMIN_KEY))
        assert response.status_code == 200, response.text
        return np.array([row["embedding"] for row in response.json()["data"]])

    prompted = reference_vectors(reference_model, [QUERY_PROMPT + t for t in TEXTS[:2]])
    assert cosines(embed(TEXTS[:2], task="retrieval.query"), prompted).min() >= 0.9999
    plain = reference_vectors(reference_model, TEXTS[:2])
    assert cosines(embed(TEXTS[:2], task="text-matching"), plain).min() >= 0.9999  # no such prompt: none
    chunked = embed(CHUNKS, task="retrieval.query", late_chunking=True)
    expected = late_chunked_reference(reference_model, CHUNKS, QUERY_PROMPT)
    assert cosines(chunked, expected).min() >= 0.9999
    reranker = post(production_server, "/v1/embeddings", {"model": RERANKER, "input": CHUNKS,
                                                          "late_chunking": True}, **bearer(ADMIN_KEY))
    assert reranker.status_code == 400 and "reranker" in reranker.json()["detail"]


ERRORS = {
    "late chunking past the context": ({"input": [LONG_TEXT[:600], LONG_TEXT[:700]], "late_chunking": True},
                                       "late_chunking", "input"),
    "too long with truncate false": ({"input": ["ok", LONG_TEXT], "truncate": False}, "256", "input"),
    "unknown task": ({"input": ["x"], "task": "retrieval.document"}, "task", "task"),
    "unknown embedding_type": ({"input": ["x"], "embedding_type": "float16"}, "embedding_type",
                               "embedding_type"),
    "embedding_type as a list": ({"input": ["x"], "embedding_type": ["float", "binary"]}, "embedding_type",
                                 "embedding_type"),
    "normalized of the wrong type": ({"input": ["x"], "normalized": "yes"}, "normalized", "normalized"),
    "two dtypes": ({"input": ["x"], "embedding_type": "binary", "encoding_format": "int8"}, "contradicts",
                   "embedding_type"),
    "late chunking of an empty input": ({"input": ["ok", " "], "late_chunking": True}, "input[1]", "input"),
}


@pytest.mark.parametrize("body, message, param", ERRORS.values(), ids=ERRORS.keys())
def test_errors_carry_detail(server, body, message, param):
    response = post(server, "/v1/embeddings", {"model": DEFAULT_ALIAS, **body})
    assert response.status_code == 400, response.text
    error = response.json()
    assert message in error["detail"] and error["detail"] == error["error"]["message"]
    assert error["error"]["param"] == param
