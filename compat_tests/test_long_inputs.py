"""A single input far longer than the model takes is cut (or refused) through a bounded window of its
characters, never tokenized in full: the answer for a huge input is the answer for its first
``max_tokens * WINDOW_CHARS_PER_TOKEN`` characters (``gateway.engines.text.tokenization.encode``)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from compat_tests.conftest import DEFAULT_ALIAS
from compat_tests.dialects import openai_route, post
from gateway.engines.text.windows import WINDOW_CHARS_PER_TOKEN

MAX_TOKENS = 256  # all-MiniLM-L6-v2's limit
WINDOW = MAX_TOKENS * WINDOW_CHARS_PER_TOKEN
WORDS = "the quick brown fox jumps over a lazy dog while internationalization unbelievably happens".split()


@pytest.fixture(scope="module")
def huge() -> str:
    """About 6 MB of words (under the 8 MiB body limit)."""
    rng = random.Random(16)
    return " ".join(rng.choice(WORDS) for _ in range(800_000))


def test_a_huge_input_is_embedded_as_its_first_window(server, huge):
    got = openai_route(server, [huge], DEFAULT_ALIAS)
    window = openai_route(server, [huge[:WINDOW]], DEFAULT_ALIAS)
    longer = openai_route(server, [huge[:4 * WINDOW]], DEFAULT_ALIAS)  # tokenized in full, then cut
    np.testing.assert_array_equal(got, window)
    np.testing.assert_allclose(got, longer, atol=1e-6)
    usage = post(server, "/v1/embeddings", {"model": DEFAULT_ALIAS, "input": [huge]}).json()["usage"]
    assert usage["prompt_tokens"] == MAX_TOKENS  # the model's real tokens of what was embedded


def test_left_truncation_keeps_the_last_window(server, huge):
    body = {"inputs": huge, "truncate": True, "truncation_direction": "Left"}
    got = post(server, "/embed", body)
    tail = post(server, "/embed", {**body, "inputs": huge[-4 * WINDOW:]})
    assert got.status_code == tail.status_code == 200, got.text
    np.testing.assert_allclose(got.json(), tail.json(), atol=1e-6)


def test_reject_still_rejects_a_huge_input(server, huge):
    response = post(server, "/v1/embed", {"model": DEFAULT_ALIAS, "texts": [huge], "truncate": "NONE"})
    assert response.status_code == 400, response.text
    assert "at least" in response.json()["message"] and str(MAX_TOKENS) in response.json()["message"]


def test_late_chunking_refuses_a_huge_input_without_tokenizing_it(server, huge):
    body = {"model": DEFAULT_ALIAS, "input": ["short", huge], "late_chunking": True}
    response = post(server, "/v1/embeddings", body)
    assert response.status_code == 400 and "late_chunking" in response.json()["detail"]


def test_a_huge_rerank_document_is_chunked_from_its_start(server, huge):
    body = {"model": DEFAULT_ALIAS, "query": "a lazy dog", "documents": [huge, "a lazy dog sleeps"]}
    response = post(server, "/v1/rerank", body)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 2


def test_tokenize_refuses_more_characters_than_the_request_token_cap_holds(server, huge):
    response = post(server, "/tokenize", {"inputs": huge})  # 6 MB: over 300,000 tokens x 16 characters
    assert response.status_code == 400 and "characters" in response.json()["error"]
    fine = post(server, "/tokenize", {"inputs": huge[:1000]})
    assert fine.status_code == 200 and len(fine.json()[0]) > 100
