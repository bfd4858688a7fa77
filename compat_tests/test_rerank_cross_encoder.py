"""A sentence-transformers ``CrossEncoder`` served from a TOML config next to the default bi-encoder.

No cross-encoder weights can be downloaded here, so the test builds a tiny random BERT cross-encoder
(one label) with the MiniLM tokenizer; its weights are drawn wide enough that scores differ clearly.
The server's raw scores must equal ``CrossEncoder.predict(..., activation_fn=Identity())`` and its
relevance scores their sigmoid.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cohere
import httpx
import numpy as np
import pytest
import torch

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.rerank_reference import (
    FILLER,
    PASSAGES,
    QUERY,
    check_sorted_scores,
    sigmoid,
    split_at_tokens,
)
from compat_tests.server import run_server
from tests.tiny_models import MAX_POSITIONS, build_tiny_cross_encoder

CROSS_ENCODER = "tiny-cross-encoder"
DOCUMENTS = [*PASSAGES, "cats", "A much longer passage about the history of European capitals, " * 4]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder") / "model")


@pytest.fixture(scope="module")
def reference(model_dir):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(model_dir), device="cpu", local_files_only=True)


def logits(reference, query: str, documents: list[str]) -> np.ndarray:
    return reference.predict([(query, d) for d in documents], activation_fn=torch.nn.Identity())


@pytest.fixture(scope="module")
def ce_server(tmp_path_factory, model_dir):
    workdir = tmp_path_factory.mktemp("cross-encoder-server")
    (workdir / "gateway.toml").write_text(
        f'[[models]]\nname = "{CROSS_ENCODER}"\nsource = "{model_dir}"\ntask = "rerank"\n\n'
        f'[[models]]\nname = "{DEFAULT_MODEL}"\n'
    )
    with run_server(workdir, args=["--config", str(workdir / "gateway.toml")]) as running:
        yield running


def test_scores_equal_cross_encoder_predict(ce_server, reference):
    expected = logits(reference, QUERY, DOCUMENTS)
    assert np.ptp(expected) > 1.0  # the tiny model separates the documents
    raw = httpx.post(
        f"{ce_server.url}/rerank",
        json={"model": CROSS_ENCODER, "query": QUERY, "texts": DOCUMENTS, "raw_scores": True},
        timeout=60,
    ).json()
    assert [r["index"] for r in raw] == list(np.argsort(-expected, kind="stable"))
    assert all(r["score"] == pytest.approx(expected[r["index"]], abs=1e-4) for r in raw)
    response = cohere.ClientV2(base_url=ce_server.url, api_key="x").rerank(
        model=CROSS_ENCODER, query=QUERY, documents=DOCUMENTS
    )
    assert [r.index for r in response.results] == [r["index"] for r in raw]
    check_sorted_scores([r.relevance_score for r in response.results])
    assert all(
        r.relevance_score == pytest.approx(sigmoid(expected[r.index]), abs=1e-4) for r in response.results
    )
    pair_tokens = sum(len(reference.tokenizer(QUERY, d)["input_ids"]) for d in DOCUMENTS)
    assert response.meta.tokens.input_tokens == pair_tokens


def test_requests_without_model_use_the_cross_encoder(ce_server, reference):
    response = cohere.Client(base_url=ce_server.url, api_key="x").rerank(
        query=QUERY, documents=DOCUMENTS, top_n=3
    )
    expected = sigmoid_all(logits(reference, QUERY, DOCUMENTS))
    assert response.model == CROSS_ENCODER
    assert [r.index for r in response.results] == list(np.argsort(-expected, kind="stable")[:3])


def sigmoid_all(values: np.ndarray) -> np.ndarray:
    return np.array([sigmoid(v) for v in values])


def test_long_document_scores_as_its_best_chunk(ce_server, reference):
    document = FILLER * 2 + "Paris is the capital of France. " * 20
    # Room beside the query and [CLS] [SEP] [SEP]: the batch call keeps both [SEP] for an empty document.
    budget = MAX_POSITIONS - len(reference.tokenizer([QUERY], [""])["input_ids"][0])
    chunks = split_at_tokens(reference.tokenizer, document, budget)
    assert len(chunks) >= 3
    chunk_logits = logits(reference, QUERY, chunks)
    assert chunk_logits.argmax() == len(chunks) - 1  # the best chunk is not the first
    for max_chunks in [None, 2, 1]:
        body = {"model": CROSS_ENCODER, "query": QUERY, "documents": [document, "cats"]}
        if max_chunks:
            body["max_chunks_per_doc"] = max_chunks
        results = httpx.post(f"{ce_server.url}/v1/rerank", json=body, timeout=60).json()["results"]
        score = next(r["relevance_score"] for r in results if r["index"] == 0)
        assert score == pytest.approx(sigmoid(chunk_logits[:max_chunks].max()), abs=1e-4)


def test_default_model_still_embeds_and_reranks_as_bi_encoder(ce_server):
    embedded = httpx.post(
        f"{ce_server.url}/v1/embeddings", json={"model": DEFAULT_MODEL, "input": "hi"}, timeout=60
    )
    assert len(embedded.json()["data"][0]["embedding"]) == 384
    response = cohere.Client(base_url=ce_server.url, api_key="x").rerank(
        model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES
    )
    assert response.results[0].index == 2 and response.model == DEFAULT_MODEL
    refused = httpx.post(f"{ce_server.url}/v1/embeddings", json={"model": CROSS_ENCODER, "input": "hi"})
    assert refused.status_code == 400


def test_concurrent_cross_encoder_requests_keep_their_own_results(ce_server):
    cases = [(f"{QUERY} variant {i}", DOCUMENTS[i:] + DOCUMENTS[:i]) for i in range(len(DOCUMENTS))]

    def ranking(case):
        body = {
            "model": CROSS_ENCODER,
            "query": case[0],
            "texts": case[1],
            "raw_scores": True,
            "return_text": True,
        }
        return [
            (r["index"], r["text"], r["score"])
            for r in httpx.post(f"{ce_server.url}/rerank", json=body, timeout=120).json()
        ]

    solo = [ranking(case) for case in cases]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ranking, cases * 3))
    for i, got in enumerate(together):
        want = solo[i % len(cases)]
        assert [r[:2] for r in got] == [r[:2] for r in want]
        assert [r[2] for r in got] == pytest.approx([r[2] for r in want], abs=1e-4)
