"""Several models in one server, routed by ``model``, each with its own settings (see production.py)."""

from __future__ import annotations

import cohere
import httpx
import numpy as np
import openai
import pytest

from compat_tests.production import ADMIN_KEY, QUERY, QUERY_ALIAS, QUERY_PROMPT, RERANKER, STRICT, bearer

LONG_TEXT = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 3  # > 16 tokens
DOCUMENTS = ["Paris is the capital and largest city of France.", "Bananas are rich in potassium.",
             "The Eiffel Tower stands in Paris."]


@pytest.fixture(scope="module")
def admin(production_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=production_server.openai_base, api_key=ADMIN_KEY, max_retries=0)


def unit(vector) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64)
    return array / np.linalg.norm(array)


def test_models_lists_every_configured_name_and_alias(admin):
    assert [m.id for m in admin.models.list()] == [STRICT, QUERY, QUERY_ALIAS, RERANKER]


def test_each_model_applies_its_own_truncation_policy(admin, reference_model):
    with pytest.raises(openai.BadRequestError) as caught:
        admin.embeddings.create(model=STRICT, input=["short", LONG_TEXT])
    assert caught.value.body["code"] == "context_length_exceeded" and "16" in caught.value.message
    vector = admin.embeddings.create(model=QUERY, input=LONG_TEXT).data[0].embedding  # default: truncate
    assert np.dot(unit(vector), unit(reference_model.encode(LONG_TEXT))) > 0.9999


def test_both_copies_of_the_model_embed_short_texts_alike(admin, reference_model):
    expected = unit(reference_model.encode("a short text"))
    for model in (STRICT, QUERY, QUERY_ALIAS):
        vector = admin.embeddings.create(model=model, input="a short text").data[0].embedding
        assert np.dot(unit(vector), expected) > 0.9999, model


def test_query_prompt_applies_only_to_its_model(production_server, reference_model):
    sdk = cohere.ClientV2(base_url=production_server.url, api_key=ADMIN_KEY, timeout=60)
    for model, prompt in ((QUERY, QUERY_PROMPT), (STRICT, "")):
        response = sdk.embed(model=model, texts=["hello"], input_type="search_query",
                             embedding_types=["float"])
        expected = unit(reference_model.encode(prompt + "hello"))
        assert np.dot(unit(response.embeddings.float_[0]), expected) > 0.9999, model
    with_prompt, without = (unit(reference_model.encode(t)) for t in (QUERY_PROMPT + "hello", "hello"))
    assert np.dot(with_prompt, without) < 0.999  # the prompt really changes the vector


def test_the_cross_encoder_reranks_and_does_not_embed(production_server, admin):
    from sentence_transformers import CrossEncoder

    folder = production_server.log_path.parent / "tiny-reranker"
    expected = CrossEncoder(str(folder), device="cpu").predict([("capital of France", d) for d in DOCUMENTS])
    response = httpx.post(f"{production_server.url}/v2/rerank", headers=bearer(ADMIN_KEY), timeout=60,
                          json={"model": RERANKER, "query": "capital of France", "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    scores = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    assert scores == pytest.approx(dict(enumerate(map(float, expected))), abs=1e-4)  # sigmoid(logit)
    with pytest.raises(openai.BadRequestError) as caught:
        admin.embeddings.create(model=RERANKER, input="hello")
    assert caught.value.body["param"] == "model"
