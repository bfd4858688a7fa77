"""Rerank integrations against the real server: LangChain ``CohereRerank``, LlamaIndex ``CohereRerank`` and
``JinaRerank``, raw Jina-format HTTP, and TEI's ``/rerank`` body."""

from __future__ import annotations

import json

import cohere
import httpx
import pytest
from langchain_cohere import CohereRerank as LangChainCohereRerank
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.cohere_rerank import CohereRerank as LlamaCohereRerank
from llama_index.postprocessor.jinaai_rerank import JinaRerank

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.rerank_reference import (
    FILLER,
    PASSAGES,
    QUERY,
    RELEVANT,
    bi_encoder_relevance,
    check_sorted_scores,
)


def recording_client(server, sent: list[dict]) -> cohere.ClientV2:
    """A ClientV2 whose request bodies are appended to ``sent``."""

    def record(request: httpx.Request) -> None:
        sent.append({"path": request.url.path, "body": json.loads(request.content)})

    return cohere.ClientV2(
        base_url=server.url,
        api_key="x",
        httpx_client=httpx.Client(timeout=60, event_hooks={"request": [record]}),
    )


def test_langchain_cohere_rerank_compresses_documents(server):
    sent: list[dict] = []
    reranker = LangChainCohereRerank(client=recording_client(server, sent), model=DEFAULT_MODEL, top_n=2)
    docs = [Document(page_content=text, metadata={"n": i}) for i, text in enumerate(PASSAGES)]
    compressed = reranker.compress_documents(docs, QUERY)
    assert len(compressed) == 2
    assert compressed[0].page_content == PASSAGES[RELEVANT] and compressed[0].metadata["n"] == RELEVANT
    check_sorted_scores([d.metadata["relevance_score"] for d in compressed])
    assert sent[-1]["path"] == "/v2/rerank" and sent[-1]["body"]["top_n"] == 2


def test_langchain_rerank_with_top_n_none_sends_null_and_gets_all(server, reference_model):
    sent: list[dict] = []
    reranker = LangChainCohereRerank(client=recording_client(server, sent), model=DEFAULT_ALIAS)
    results = reranker.rerank(PASSAGES, QUERY, top_n=None)
    assert sent[-1]["body"]["top_n"] is None and sent[-1]["body"]["max_tokens_per_doc"] is None
    expected = bi_encoder_relevance(reference_model, QUERY, PASSAGES)
    assert [r["index"] for r in results] == list(expected.argsort()[::-1])
    assert all(r["relevance_score"] == pytest.approx(expected[r["index"]], abs=1e-4) for r in results)


def test_langchain_with_base_url_and_api_key(server):
    reranker = LangChainCohereRerank(base_url=server.url, cohere_api_key="x", model=DEFAULT_MODEL, top_n=3)
    results = reranker.rerank(PASSAGES, QUERY)
    assert len(results) == 3 and results[0]["index"] == RELEVANT


def nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=text, id_=f"n{i}"), score=0.0) for i, text in enumerate(PASSAGES)
    ]


def test_llama_index_cohere_rerank(server):
    reranker = LlamaCohereRerank(
        api_key="x", base_url=server.url, model=DEFAULT_MODEL, top_n=2, max_retries=1
    )
    ranked = reranker.postprocess_nodes(nodes(), query_bundle=QueryBundle(QUERY))
    assert [n.node.node_id for n in ranked][0] == f"n{RELEVANT}" and len(ranked) == 2
    check_sorted_scores([n.score for n in ranked])


@pytest.mark.parametrize("suffix", ["/v1", ""])  # JinaRerank posts to f"{base_url}/rerank"
def test_llama_index_jina_rerank(server, suffix):
    reranker = JinaRerank(api_key="x", base_url=server.url + suffix, model=DEFAULT_MODEL, top_n=3)
    ranked = reranker.postprocess_nodes(nodes(), query_bundle=QueryBundle(QUERY))
    assert len(ranked) == 3 and ranked[0].node.node_id == f"n{RELEVANT}"
    check_sorted_scores([n.score for n in ranked])


def test_llama_index_jina_rerank_surfaces_server_errors(server):
    reranker = JinaRerank(api_key="x", base_url=f"{server.url}/v1", model="no-such-model", top_n=3)
    with pytest.raises(RuntimeError, match="no-such-model"):  # it raises resp["detail"]
        reranker.postprocess_nodes(nodes(), query_bundle=QueryBundle(QUERY))


@pytest.mark.parametrize(
    "documents", [PASSAGES, [{"text": text} for text in PASSAGES]], ids=["strings", "objects"]
)
def test_raw_jina_format(server, reference_model, documents):
    body = {
        "model": DEFAULT_MODEL,
        "query": QUERY,
        "documents": documents,
        "top_n": 3,
        "return_documents": True,
    }
    response = httpx.post(
        f"{server.url}/v1/rerank", json=body, headers={"Authorization": "Bearer x"}, timeout=60
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["model"] == DEFAULT_MODEL
    tokens = sum(len(reference_model.tokenizer(text)["input_ids"]) for text in [QUERY, *PASSAGES])
    assert payload["usage"]["total_tokens"] == tokens
    results = payload["results"]
    assert len(results) == 3 and results[0]["index"] == RELEVANT
    assert all(r["document"] == {"text": PASSAGES[r["index"]]} for r in results)
    check_sorted_scores([r["relevance_score"] for r in results])


def tei(server, **body) -> httpx.Response:
    return httpx.post(f"{server.url}/rerank", json={"query": QUERY, "texts": PASSAGES, **body}, timeout=60)


def test_tei_rerank_body(server, reference_model):
    ranks = tei(server).json()
    expected = bi_encoder_relevance(reference_model, QUERY, PASSAGES)
    assert [r["index"] for r in ranks] == list(expected.argsort()[::-1])
    assert all(set(r) == {"index", "score"} for r in ranks)
    assert all(r["score"] == pytest.approx(expected[r["index"]], abs=1e-4) for r in ranks)
    raw = tei(server, raw_scores=True, return_text=True).json()
    assert all(r["score"] == pytest.approx(2 * expected[r["index"]] - 1, abs=1e-4) for r in raw)  # the cosine
    assert all(r["text"] == PASSAGES[r["index"]] for r in raw)


def test_tei_truncation_keeps_the_named_side(server, reference_model):
    long_text = FILLER + "Paris is the capital and most populous city of France."
    budget = reference_model.max_seq_length - 2  # [CLS] and [SEP]
    offsets = reference_model.tokenizer(long_text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    assert len(offsets) > budget
    head, tail = long_text[: offsets[budget][0]], long_text[offsets[-budget][0] :]
    expected = bi_encoder_relevance(reference_model, QUERY, [head, tail])
    scores = {
        direction: tei(server, texts=[long_text], truncate=True, truncation_direction=direction).json()[0][
            "score"
        ]
        for direction in ["Right", "Left"]
    }
    assert scores["Right"] == pytest.approx(expected[0], abs=1e-4)
    assert scores["Left"] == pytest.approx(expected[1], abs=1e-4)
    assert scores["Left"] > scores["Right"] + 0.05  # the end holds the answer


def test_documents_on_the_tei_path_stay_cohere(server):
    payload = httpx.post(
        f"{server.url}/rerank", json={"query": QUERY, "documents": PASSAGES}, timeout=60
    ).json()
    assert payload["results"][0]["index"] == RELEVANT and payload["meta"]["api_version"]["version"] == "1"
