"""The official openai SDK against the real server on the embedded default model."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from gateway.protocol.token_ids import cl100k

TEXTS = [
    "The cat sat on the mat.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "A",
    "Paris is the capital and most populous city of France. " * 40,  # past the 256-token limit
    "¿Dónde está la biblioteca? 图书馆在哪里？",
]


def vectors(response) -> np.ndarray:
    """Rows of an embeddings response; an explicit ``base64`` request is returned undecoded by the SDK."""
    rows = [row.embedding for row in response.data]
    if isinstance(rows[0], str):
        return np.array([np.frombuffer(base64.b64decode(row), dtype="<f4") for row in rows])
    return np.array(rows)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base, api_key="unused", max_retries=0)


@pytest.mark.parametrize("encoding_format", ["float", "base64", openai.NOT_GIVEN])
def test_vectors_equal_sentence_transformers(client, reference_model, encoding_format):
    response = client.embeddings.create(model=DEFAULT_MODEL, input=TEXTS, encoding_format=encoding_format)
    got = vectors(response)
    assert [row.index for row in response.data] == list(range(len(TEXTS)))
    assert got.shape == (len(TEXTS), 384)
    assert cosines(got, reference_model.encode(TEXTS)).min() >= 0.9999


def test_single_string_alias_and_usage(client, reference_model):
    response = client.embeddings.create(model=DEFAULT_ALIAS, input="hello world", encoding_format="float")
    assert response.object == "list" and response.model == DEFAULT_ALIAS
    assert response.data[0].object == "embedding"
    tokens = len(reference_model.tokenizer("hello world")["input_ids"])
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens
    assert cosines([response.data[0].embedding], reference_model.encode(["hello world"]))[0] >= 0.9999


def test_usage_counts_model_tokens_after_truncation(client, reference_model):
    response = client.embeddings.create(model=DEFAULT_MODEL, input=TEXTS)
    expected = sum(min(len(ids), 256) for ids in reference_model.tokenizer(TEXTS)["input_ids"])
    assert response.usage.prompt_tokens == expected


def test_vector_is_the_same_alone_and_inside_a_mixed_batch(client):
    alone = [client.embeddings.create(model=DEFAULT_MODEL, input=t).data[0].embedding for t in TEXTS]
    batch = [row.embedding for row in client.embeddings.create(model=DEFAULT_MODEL, input=TEXTS * 7).data]
    assert cosines(np.tile(alone, (7, 1)), batch).min() >= 0.9999


@pytest.mark.parametrize("dimensions", [1, 64, 383, 384])
def test_dimensions_truncate_then_renormalize(client, reference_model, dimensions):
    response = client.embeddings.create(model=DEFAULT_MODEL, input=TEXTS[:2], dimensions=dimensions)
    got = np.array([row.embedding for row in response.data])
    full = reference_model.encode(TEXTS[:2])[:, :dimensions]
    assert got.shape == (2, dimensions)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    if dimensions > 1:
        assert cosines(got, full).min() >= 0.9999
    else:
        assert np.array_equal(np.sign(got[:, 0]), np.sign(full[:, 0]))


def test_token_id_input_is_decoded_with_cl100k(client, reference_model):
    ids = [cl100k().encode(text) for text in TEXTS[:3]]
    by_ids = client.embeddings.create(model=DEFAULT_MODEL, input=ids, encoding_format="float")
    got = np.array([row.embedding for row in by_ids.data])
    assert cosines(got, reference_model.encode(TEXTS[:3])).min() >= 0.9999
    single = client.embeddings.create(model=DEFAULT_MODEL, input=ids[1], encoding_format="float")
    assert cosines([single.data[0].embedding], reference_model.encode(TEXTS[1:2]))[0] >= 0.9999


@pytest.mark.parametrize("size", [1, 2, 17, 256, 2048])
def test_batches_up_to_2048_inputs_keep_order(client, reference_model, max_batch_size, size):
    if size > max_batch_size:
        pytest.skip(f"batch of {size} is over this engine's test size {max_batch_size}")
    texts = [f"document number {i}: " + "lorem ipsum " * (i % 13) for i in range(size)]
    response = client.embeddings.create(model=DEFAULT_MODEL, input=texts)
    got = np.array([row.embedding for row in response.data])
    assert [row.index for row in response.data] == list(range(size))
    sample = sorted({0, size // 2, size - 1})
    assert cosines(got[sample], reference_model.encode([texts[i] for i in sample])).min() >= 0.9999


def test_models_list_every_name_and_alias(client):
    ids = [model.id for model in client.models.list()]
    assert DEFAULT_MODEL in ids and DEFAULT_ALIAS in ids
