"""Cohere embed v1/v2 through the official cohere SDK and LangChain, plus the OpenAI route's quantized
formats; every integer type is re-derived from the float vectors of the same response."""

from __future__ import annotations

import base64

import cohere
import httpx
import numpy as np
import openai
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.embed_reference import LONG_TEXT, check_bits, reference_vectors, requantize, truncating
from compat_tests.production import ADMIN_KEY, QUERY, QUERY_PROMPT, STRICT
from compat_tests.test_openai_embeddings import TEXTS, cosines

ALL_TYPES = ["float", "int8", "uint8", "binary", "ubinary"]


def check_types(embeddings, floats: np.ndarray) -> None:
    """Each integer type equals the published quantization of the float vectors it came with."""
    for precision in ("int8", "uint8"):
        np.testing.assert_array_equal(np.array(getattr(embeddings, precision)), requantize(floats, precision))
    check_bits(floats, embeddings.ubinary, embeddings.binary)
    np.testing.assert_array_equal(np.array(embeddings.binary), requantize(floats, "binary"))


def test_v1_floats_response(v1, reference_model):
    response = v1.embed(texts=TEXTS, model=DEFAULT_MODEL)
    assert response.response_type == "embeddings_floats"
    assert response.texts == TEXTS and response.id
    assert cosines(response.embeddings, reference_vectors(reference_model, TEXTS)).min() >= 0.9999
    tokens = sum(min(len(ids), 256) for ids in reference_model.tokenizer(TEXTS)["input_ids"])
    assert response.meta.api_version.version == "1"
    assert response.meta.billed_units.input_tokens == tokens


def test_v1_every_type_comes_from_the_floats(v1, reference_model):
    response = v1.embed(texts=TEXTS, model=DEFAULT_ALIAS, input_type="search_document",
                        embedding_types=ALL_TYPES)
    assert response.response_type == "embeddings_by_type"
    floats = np.array(response.embeddings.float_, dtype=np.float32)
    assert cosines(floats, reference_vectors(reference_model, TEXTS)).min() >= 0.9999
    check_types(response.embeddings, floats)


def test_v1_without_model_uses_the_served_model(v1, reference_model):
    response = v1.embed(texts=TEXTS[:2], embedding_types=["int8"], batching=False)
    assert response.embeddings.float_ is None and len(response.embeddings.int8[0]) == 384


@pytest.mark.parametrize("output_dimension", [None, 128])
def test_v2_every_type_and_base64(v2, reference_model, output_dimension):
    response = v2.embed(model=DEFAULT_MODEL, texts=TEXTS, input_type="search_query",
                        embedding_types=[*ALL_TYPES, "base64"], output_dimension=output_dimension)
    floats = np.array(response.embeddings.float_, dtype=np.float32)
    expected = reference_vectors(reference_model, TEXTS, output_dimension)
    assert floats.shape == expected.shape and cosines(floats, expected).min() >= 0.9999
    check_types(response.embeddings, floats)
    decoded = np.array([np.frombuffer(base64.b64decode(r), dtype="<f4") for r in response.embeddings.base64])
    np.testing.assert_array_equal(decoded, floats)
    assert response.meta.api_version.version == "2" and response.texts == TEXTS


def test_v2_inputs_with_text_content_and_default_float_type(v2, server):
    inputs = [{"content": [{"type": "text", "text": text}]} for text in TEXTS[:3]]
    by_inputs = v2.embed(model=DEFAULT_MODEL, inputs=inputs, input_type="clustering")
    by_texts = v2.embed(model=DEFAULT_MODEL, texts=TEXTS[:3], input_type="classification")
    assert by_inputs.embeddings.int8 is None
    assert cosines(by_inputs.embeddings.float_, by_texts.embeddings.float_).min() >= 0.9999


@pytest.mark.parametrize("truncate, side", [("END", "right"), ("START", "left")])
def test_truncate_end_and_start(v2, reference_model, truncate, side):
    response = v2.embed(model=DEFAULT_MODEL, texts=[LONG_TEXT], input_type="search_document",
                        truncate=truncate)
    with truncating(reference_model, side):
        expected = reference_vectors(reference_model, [LONG_TEXT])
    assert cosines(response.embeddings.float_, expected)[0] >= 0.9999
    assert response.meta.billed_units.input_tokens == 256


@pytest.mark.parametrize("truncate, side", [("END", "right"), ("START", "left")])
def test_v2_max_tokens_cuts_each_input(v2, reference_model, truncate, side):
    response = v2.embed(model=DEFAULT_MODEL, texts=TEXTS[:2], input_type="search_document", max_tokens=6,
                        truncate=truncate)
    with truncating(reference_model, side, max_tokens=6):
        expected = reference_vectors(reference_model, TEXTS[:2])
    assert cosines(response.embeddings.float_, expected).min() >= 0.9999
    assert response.meta.billed_units.input_tokens == 12


def test_truncate_none_rejects_a_long_text(v1, v2):
    with pytest.raises(cohere.BadRequestError) as v1_error:
        v1.embed(texts=["short", LONG_TEXT], model=DEFAULT_MODEL, truncate="NONE")
    with pytest.raises(cohere.BadRequestError) as v2_error:
        v2.embed(model=DEFAULT_MODEL, texts=TEXTS[:2], input_type="search_query", max_tokens=4,
                 truncate="NONE")
    assert "texts[1]" in v1_error.value.body["message"] and set(v1_error.value.body) == {"message"}
    assert "texts[0]" in v2_error.value.body["message"]


def test_input_type_selects_the_configured_prompt(production_server, reference_model):
    client = cohere.ClientV2(base_url=production_server.url, api_key=ADMIN_KEY, timeout=60)
    query = client.embed(model=QUERY, texts=TEXTS[:2], input_type="search_query", embedding_types=["float"])
    document = client.embed(model=QUERY, texts=TEXTS[:2], input_type="search_document")
    prompted = reference_vectors(reference_model, [QUERY_PROMPT + t for t in TEXTS[:2]])
    assert cosines(query.embeddings.float_, prompted).min() >= 0.9999
    assert cosines(document.embeddings.float_, reference_vectors(reference_model, TEXTS[:2])).min() >= 0.9999


def test_explicit_truncate_overrides_a_reject_policy(production_server, reference_model):
    client = cohere.Client(base_url=production_server.url, api_key=ADMIN_KEY, timeout=60)
    with pytest.raises(cohere.BadRequestError):  # the model's policy: reject past 16 tokens
        client.embed(texts=[LONG_TEXT], model=STRICT)
    response = client.embed(texts=[LONG_TEXT], model=STRICT, truncate="END")
    with truncating(reference_model, "right", max_tokens=16):
        expected = reference_vectors(reference_model, [LONG_TEXT])
    assert cosines(response.embeddings, expected)[0] >= 0.9999


def test_langchain_cohere_embeddings(server, reference_model):
    from langchain_cohere import CohereEmbeddings

    embeddings = CohereEmbeddings(model=DEFAULT_MODEL, base_url=server.url, cohere_api_key="x")
    documents = embeddings.embed_documents(TEXTS)
    query = embeddings.embed_query(TEXTS[0])
    expected = reference_vectors(reference_model, TEXTS)
    assert cosines(documents, expected).min() >= 0.9999
    assert cosines([query], expected[:1])[0] >= 0.9999


@pytest.mark.parametrize("encoding_format", ["int8", "uint8", "binary", "ubinary"])
def test_openai_route_quantized_formats(server, encoding_format):
    client = openai.OpenAI(base_url=server.openai_base, api_key="unused", max_retries=0)
    floats = client.embeddings.create(model=DEFAULT_MODEL, input=TEXTS, encoding_format="float")
    quantized = client.embeddings.create(model=DEFAULT_MODEL, input=TEXTS, encoding_format=encoding_format)
    rows = np.array([row.embedding for row in quantized.data])
    float_rows = np.array([row.embedding for row in floats.data], dtype=np.float32)
    np.testing.assert_array_equal(rows, requantize(float_rows, encoding_format))
    cohere_rows = httpx.post(f"{server.url}/v1/embed", timeout=60, json={
        "texts": TEXTS, "model": DEFAULT_MODEL, "embedding_types": [encoding_format]}).json()
    np.testing.assert_array_equal(rows, cohere_rows["embeddings"][encoding_format])


@pytest.mark.parametrize("path, body, param", [
    ("/v1/embed", {"texts": ["x"] * 97}, "texts"),
    ("/v2/embed", {"model": DEFAULT_MODEL, "inputs": [{"content": [{"type": "text", "text": "x"}]}] * 97},
     "inputs"),
    ("/v2/embed", {"model": DEFAULT_MODEL, "texts": ["x"], "embedding_types": ["binary"],
                   "output_dimension": 100}, "binary"),
    ("/v2/embed", {"model": DEFAULT_MODEL, "texts": ["x"], "output_dimension": 0}, "output_dimension"),
    ("/v2/embed", {"model": DEFAULT_MODEL, "texts": ["x"], "max_tokens": 0}, "max_tokens"),
    ("/v1/embed", {"texts": ["x"], "embedding_types": ["base64"]}, "embedding_types"),
    ("/v1/embed", {"texts": ["x"], "input_type": "image"}, "input_type"),
    ("/v1/embed", {"texts": ["x"], "truncate": "MIDDLE"}, "truncate"),
    ("/v1/embed", {"images": ["data:image/png;base64,AAAA"]}, "images"),
    ("/v2/embed", {"model": DEFAULT_MODEL, "inputs": [{"content": [{"type": "image_url", "image_url": {}}]}]},
     "image"),
    ("/v2/embed", {"model": DEFAULT_MODEL, "texts": ["x"], "inputs": []}, "exactly one"),
    ("/v1/embed", {"texts": []}, "empty"),
    ("/v1/embed", {"texts": ["ok", " "]}, "texts[1]"),
    ("/v1/embed", {"model": DEFAULT_MODEL}, "texts"),
    ("/v1/embed", "not json", "JSON"),
])
def test_bad_requests_are_400_in_cohere_shape(server, path, body, param):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, str) \
        else {"json": body}
    response = httpx.post(f"{server.url}{path}", timeout=60, **kwargs)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message"} and param in response.json()["message"]


def test_unknown_model_is_404_and_server_keeps_serving(server, v1):
    with pytest.raises(cohere.NotFoundError) as error:
        v1.embed(texts=["x"], model="no-such-model")
    assert set(error.value.body) == {"message"} and "no-such-model" in error.value.body["message"]
    wrong_type = httpx.post(f"{server.url}/v2/embed", content=b"{}", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and set(wrong_type.json()) == {"message"}
    assert len(v1.embed(texts=["still serving"], model=DEFAULT_MODEL).embeddings[0]) == 384
