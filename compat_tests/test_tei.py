"""TEI routes through huggingface_hub's InferenceClient, LangChain's HuggingFaceEndpointEmbeddings and raw
HTTP: ``/embed`` (and ``/``), ``/tokenize``, ``/decode``, ``/info`` and their errors."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.embed_reference import LONG_TEXT, reference_vectors, truncating
from compat_tests.production import ADMIN_KEY, QUERY, QUERY_PROMPT, RERANKER, STRICT, bearer
from compat_tests.test_openai_embeddings import TEXTS, cosines

TEI_ERROR_TYPES = {"Validation", "Tokenizer", "Backend", "Overloaded", "Unhealthy"}


@pytest.fixture(scope="module")
def hf(server) -> InferenceClient:
    return InferenceClient(model=server.url, timeout=60)


def post(server, path: str, body, **headers) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)


def assert_tei_error(response: httpx.Response, status: int, error_type: str = "Validation") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] in TEI_ERROR_TYPES
    assert body["error_type"] == error_type
    return body["error"]


def test_inference_client_feature_extraction(hf, reference_model):
    batch = hf.feature_extraction(TEXTS)
    single = hf.feature_extraction(TEXTS[1])
    expected = reference_vectors(reference_model, TEXTS)
    assert batch.shape == expected.shape and cosines(batch, expected).min() >= 0.9999
    assert single.shape == (1, 384) and cosines(single, expected[1:2])[0] >= 0.9999


def test_inference_client_options(hf, reference_model):
    left = hf.feature_extraction(LONG_TEXT, truncate=True, truncation_direction="left")
    with truncating(reference_model, "left"):
        assert cosines(left, reference_vectors(reference_model, [LONG_TEXT]))[0] >= 0.9999
    small = hf.feature_extraction(TEXTS, dimensions=64, normalize=True)
    assert cosines(small, reference_vectors(reference_model, TEXTS, 64)).min() >= 0.9999
    assert np.allclose(np.linalg.norm(small, axis=1), 1, atol=1e-5)


def test_langchain_huggingface_endpoint_embeddings(server, reference_model):
    """langchain-huggingface >= 1.2.2 rejects a URL as ``model``; its clients are pointed at the server."""
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    embeddings = HuggingFaceEndpointEmbeddings(model=DEFAULT_MODEL)
    embeddings.client = InferenceClient(model=server.url, timeout=60)
    embeddings.async_client = AsyncInferenceClient(model=server.url, timeout=60)
    expected = reference_vectors(reference_model, TEXTS)
    assert cosines(embeddings.embed_documents(TEXTS), expected).min() >= 0.9999
    assert cosines([embeddings.embed_query(TEXTS[0])], expected[:1])[0] >= 0.9999
    assert cosines(asyncio.run(embeddings.aembed_documents(TEXTS)), expected).min() >= 0.9999


def test_embed_route_bodies(server, reference_model):
    one = post(server, "/embed", {"inputs": TEXTS[0]}).json()
    many = post(server, "/embed", {"inputs": TEXTS, "normalize": False, "model": DEFAULT_MODEL}).json()
    assert len(one) == 1 and len(many) == len(TEXTS)
    assert cosines(many, reference_vectors(reference_model, TEXTS)).min() >= 0.9999
    right = post(server, "/embed", {"inputs": [LONG_TEXT], "truncate": True, "truncation_direction": "Right"})
    assert cosines(right.json(), reference_vectors(reference_model, [LONG_TEXT]))[0] >= 0.9999


def test_normalize_false_gives_the_raw_pooled_vectors(server, reference_model):
    """MiniLM ends in a Normalize module; ``normalize: false`` answers what comes before it, as TEI does."""
    from sentence_transformers import SentenceTransformer

    assert type(reference_model[-1]).__name__ == "Normalize"
    raw_model = SentenceTransformer(modules=list(reference_model)[:-1], device="cpu")
    expected = raw_model.encode(TEXTS, convert_to_numpy=True)
    raw = np.array(post(server, "/embed", {"inputs": TEXTS, "normalize": False}).json())
    assert np.abs(np.linalg.norm(expected, axis=1) - 1).min() > 0.05  # really not unit length
    np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-4)
    small = np.array(post(server, "/embed", {"inputs": TEXTS, "normalize": False, "dimensions": 64}).json())
    np.testing.assert_allclose(small, expected[:, :64], rtol=1e-3, atol=1e-4)  # cut, not re-normalized
    unit = np.array(post(server, "/embed", {"inputs": TEXTS}).json())
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)


def test_token_id_inputs_embed_like_their_text(server):
    ids = [[t["id"] for t in row] for row in post(server, "/tokenize", {"inputs": TEXTS[:2]}).json()]
    by_text = np.array(post(server, "/embed", {"inputs": TEXTS[:2]}).json())
    single = np.array(post(server, "/embed", {"inputs": ids[0]}).json())
    mixed = np.array(post(server, "/embed", {"inputs": [ids[0], TEXTS[1], ids[1]]}).json())
    assert single.shape == (1, 384) and cosines(single, by_text[:1])[0] >= 0.99999
    assert cosines(mixed, by_text[[0, 1, 1]]).min() >= 0.99999


def test_long_token_id_inputs_follow_truncate(server):
    long_ids = [t["id"] for t in post(server, "/tokenize", {"inputs": LONG_TEXT}).json()[0]]
    assert len(long_ids) > 256
    assert "256" in assert_tei_error(post(server, "/embed", {"inputs": long_ids, "truncate": False}), 400)
    cut = post(server, "/embed", {"inputs": [long_ids], "truncate": True}).json()
    first = post(server, "/embed", {"inputs": [long_ids[:256]]}).json()
    last = post(server, "/embed", {"inputs": [long_ids], "truncate": True, "truncation_direction": "Left"})
    assert cosines(cut, first)[0] >= 0.99999
    assert cosines(last.json(), post(server, "/embed", {"inputs": [long_ids[-256:]]}).json())[0] >= 0.99999


def test_prompt_name_and_first_model_policy(production_server, reference_model):
    headers = bearer(ADMIN_KEY)
    body = {"inputs": TEXTS[:2], "prompt_name": "query", "model": QUERY}
    prompted = post(production_server, "/embed", body, **headers)
    expected = reference_vectors(reference_model, [QUERY_PROMPT + text for text in TEXTS[:2]])
    assert cosines(prompted.json(), expected).min() >= 0.9999
    # the first served model (max_tokens 16, reject) serves requests without a model
    assert "16" in assert_tei_error(post(production_server, "/embed", {"inputs": LONG_TEXT}, **headers), 400)
    cut = post(production_server, "/embed", {"inputs": LONG_TEXT, "truncate": True}, **headers)
    with truncating(reference_model, "right", max_tokens=16):
        assert cosines(cut.json(), reference_vectors(reference_model, [LONG_TEXT]))[0] >= 0.9999


def test_tokenize_gives_model_ids_and_utf8_byte_offsets(server, reference_model):
    tokens = post(server, "/tokenize", {"inputs": TEXTS[4]}).json()
    assert len(tokens) == 1
    assert [t["id"] for t in tokens[0]] == reference_model.tokenizer(TEXTS[4])["input_ids"]
    first, *middle, last = tokens[0]
    assert first == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
    assert last["special"] and last["text"] == "[SEP]"
    raw = TEXTS[4].encode()
    for token in middle:
        assert not token["special"] and raw[token["start"]:token["stop"]].decode() == token["text"]
    assert any(token["stop"] - token["start"] != len(token["text"]) for token in middle)  # multi-byte chars
    bare = post(server, "/tokenize", {"inputs": ["a b", "c"], "add_special_tokens": False}).json()
    assert [[t["text"] for t in row] for row in bare] == [["a", "b"], ["c"]]


def test_tokenize_with_prompt_name(production_server):
    body = {"inputs": "hello", "prompt_name": "query", "model": QUERY}
    tokens = post(production_server, "/tokenize", body, **bearer(ADMIN_KEY)).json()[0]
    assert [t["text"] for t in tokens] == ["[CLS]", "query", ":", "hello", "[SEP]"]


def test_decode_round_trip(server, reference_model):
    ids = [row["id"] for row in post(server, "/tokenize", {"inputs": TEXTS[4]}).json()[0]]
    expected = reference_model.tokenizer.decode(ids, skip_special_tokens=True)
    assert post(server, "/decode", {"ids": ids}).json() == [expected]
    both = post(server, "/decode", {"ids": [ids, [101, 7592, 102]], "skip_special_tokens": False}).json()
    assert both[1] == "[CLS] hello [SEP]" and both[0].startswith("[CLS]")


def test_info_describes_the_first_model(server, reference_model):
    info = httpx.get(f"{server.url}/info", timeout=10).json()
    assert info["model_id"] == DEFAULT_MODEL and info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_input_length"] == reference_model.max_seq_length and info["model_dtype"] == "float32"
    assert info["auto_truncate"] is True and info["max_client_batch_size"] > 0 and info["version"]


def test_info_of_a_reject_model_and_a_reranker(production_server):
    headers = bearer(ADMIN_KEY)
    first = httpx.get(f"{production_server.url}/info", headers=headers, timeout=10).json()
    assert first["model_id"] == STRICT and first["max_input_length"] == 16 and first["auto_truncate"] is False
    reranker = httpx.get(f"{production_server.url}/info", params={"model": RERANKER}, headers=headers).json()
    assert "reranker" in reranker["model_type"]
    refused = post(production_server, "/embed", {"inputs": "x", "model": RERANKER}, **headers)
    assert "reranker" in assert_tei_error(refused, 400)


@pytest.mark.parametrize("path, body, status, error_type", [
    ("/embed", {"inputs": "x", "model": "no-such-model"}, 404, "Validation"),
    ("/embed", {"inputs": []}, 400, "Validation"),
    ("/embed", {"inputs": ["ok", ""]}, 400, "Validation"),
    ("/embed", {"inputs": 5}, 400, "Validation"),
    ("/embed", {"inputs": [101, 30522, 102]}, 400, "Validation"),  # id outside the vocabulary
    ("/embed", {"inputs": [[101, 102], []]}, 400, "Validation"),
    ("/embed", {"inputs": ["text", 101]}, 400, "Validation"),  # bare ids mixed with a text
    ("/embed", {"inputs": [101, 102], "prompt_name": "query"}, 400, "Validation"),
    ("/embed", {"inputs": "x", "prompt_name": "query"}, 400, "Validation"),
    ("/embed", {"inputs": "x", "dimensions": 0}, 400, "Validation"),
    ("/embed", {"inputs": "x", "dimensions": 385}, 400, "Validation"),
    ("/embed", {"inputs": "x", "truncation_direction": "Up"}, 400, "Validation"),
    ("/embed", {"inputs": LONG_TEXT, "truncate": False}, 400, "Validation"),
    ("/", {"texts": ["x"]}, 400, "Validation"),
    ("/tokenize", {"input": "x"}, 400, "Validation"),
    ("/decode", {"ids": [1, [2]]}, 400, "Validation"),
    ("/decode", {"ids": []}, 400, "Validation"),
    ("/decode", {"ids": [[101, 30522]]}, 422, "Tokenizer"),
    ("/decode", {"ids": [-1]}, 422, "Tokenizer"),
])
def test_errors_in_tei_shape(server, path, body, status, error_type):
    assert_tei_error(post(server, path, body), status, error_type)


def test_protocol_errors_and_server_keeps_serving(server, hf):
    malformed = httpx.post(f"{server.url}/embed", content=b"{", headers={"content-type": "application/json"})
    assert_tei_error(malformed, 400)
    plain_text = httpx.post(f"{server.url}/tokenize", content=b"{}", headers={"content-type": "text/plain"})
    assert_tei_error(plain_text, 415)
    assert_tei_error(httpx.get(f"{server.url}/embed"), 405)
    assert_tei_error(httpx.get(f"{server.url}/info", params={"model": "nope"}), 404)
    assert hf.feature_extraction("still serving").shape == (1, 384)
