"""The official cohere SDK (``Client`` -> /v1/rerank, ``ClientV2`` -> /v2/rerank) and raw Cohere bodies,
against the real server reranking with the embedded default model as a bi-encoder."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import cohere
import httpx
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.rerank_reference import (
    FILLER,
    PASSAGES,
    QUERY,
    RELEVANT,
    best_chunk_relevance,
    bi_encoder_relevance,
    check_sorted_scores,
    split_at_tokens,
)

RANKING_CASES = [
    (QUERY, PASSAGES, RELEVANT),
    (
        "How do plants make food from sunlight?",
        [
            "The French Revolution began in 1789.",
            "Photosynthesis converts light energy into chemical energy in plants.",
            "Dogs are loyal pets.",
            "Volcanoes erupt molten rock.",
        ],
        1,
    ),
    (
        "python list sorting",
        [
            "How to bake sourdough bread at home",
            "Use sorted(my_list) or list.sort() to sort a list in Python.",
            "The history of the Roman empire",
        ],
        1,
    ),
]


def scores_by_index(results) -> dict[int, float]:
    return {r.index: r.relevance_score for r in results}


def assert_matches_reference(results, expected) -> None:
    """Every document is present once, best first, with the reference relevance (1e-4)."""
    check_sorted_scores([r.relevance_score for r in results])
    got = scores_by_index(results)
    assert sorted(got) == list(range(len(expected)))
    for index, score in got.items():
        assert score == pytest.approx(expected[index], abs=1e-4)


@pytest.mark.parametrize(("query", "passages", "relevant"), RANKING_CASES)
def test_v1_strings_rank_the_relevant_passage_first(v1, reference_model, query, passages, relevant):
    response = v1.rerank(model=DEFAULT_MODEL, query=query, documents=passages)
    assert response.results[0].index == relevant
    assert_matches_reference(response.results, bi_encoder_relevance(reference_model, query, passages))
    assert all(r.document is None for r in response.results)
    assert response.meta.api_version.version == "1"
    assert response.meta.billed_units.search_units == 1
    tokens = sum(len(reference_model.tokenizer(text)["input_ids"]) for text in [query, *passages])
    assert response.meta.tokens.input_tokens == tokens


def test_v1_objects_are_echoed_whole_when_return_documents(v1, reference_model):
    documents = [{"text": text, "id": f"doc-{i}", "source": "wiki"} for i, text in enumerate(PASSAGES)]
    response = v1.rerank(model=DEFAULT_ALIAS, query=QUERY, documents=documents, return_documents=True)
    assert_matches_reference(response.results, bi_encoder_relevance(reference_model, QUERY, PASSAGES))
    for result in response.results:
        assert result.document.text == PASSAGES[result.index]
        assert result.document.model_dump() == documents[result.index]


def test_v1_rank_fields_rank_on_the_named_fields_in_order(v1, reference_model):
    documents = [{"title": f"Passage {i}", "body": text, "lang": "en"} for i, text in enumerate(PASSAGES)]
    response = v1.rerank(
        model=DEFAULT_MODEL,
        query=QUERY,
        documents=documents,
        rank_fields=["title", "body"],
        return_documents=True,
    )
    ranked_texts = [f"{d['title']}\n{d['body']}" for d in documents]
    assert response.results[0].index == RELEVANT
    assert_matches_reference(response.results, bi_encoder_relevance(reference_model, QUERY, ranked_texts))
    # The SDK's document model declares a required `text`: objects without one read back text=None.
    echoed = {r.index: r.document.model_dump(exclude_none=True) for r in response.results}
    assert echoed == dict(enumerate(documents))


def test_v1_top_n_keeps_the_best_and_larger_top_n_returns_all(v1):
    full = v1.rerank(model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES).results
    top = v1.rerank(model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES, top_n=2).results
    assert [r.index for r in top] == [r.index for r in full[:2]]
    assert len(v1.rerank(model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES, top_n=100).results) == len(
        PASSAGES
    )


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank"])
@pytest.mark.parametrize("return_documents", [False, None])
def test_document_key_is_absent_unless_requested(server, path, return_documents):
    body = {"model": DEFAULT_MODEL, "query": QUERY, "documents": PASSAGES}
    if return_documents is not None:
        body["return_documents"] = return_documents
    response = httpx.post(server.url + path, json=body, timeout=60)
    assert response.status_code == 200
    payload = response.json()
    assert all(set(result) == {"index", "relevance_score"} for result in payload["results"])
    assert payload["meta"]["api_version"]["version"] == ("2" if path == "/v2/rerank" else "1")
    assert payload["usage"]["total_tokens"] == payload["meta"]["tokens"]["input_tokens"] > 0
    assert payload["model"] == DEFAULT_MODEL and payload["id"]


def test_v2_client_with_top_n_and_max_tokens_per_doc(v2, reference_model):
    response = v2.rerank(
        model=DEFAULT_MODEL, query=QUERY, documents=PASSAGES, top_n=3, max_tokens_per_doc=512
    )
    expected = bi_encoder_relevance(reference_model, QUERY, PASSAGES)
    assert [r.index for r in response.results] == list(expected.argsort()[::-1][:3])
    assert response.results[0].index == RELEVANT
    assert response.meta.api_version.version == "2"
    # return_documents is not a ClientV2 argument any more; older v2 bodies still send it.
    echoed = v2.rerank(
        model=DEFAULT_MODEL,
        query=QUERY,
        documents=PASSAGES,
        request_options={"additional_body_parameters": {"return_documents": True}},
    )
    assert all(r.document == {"text": PASSAGES[r.index]} for r in echoed.results)


V2_SHAPES = {
    "v1 shape": {
        "documents": [{"text": t, "n": i} for i, t in enumerate(PASSAGES)],
        "rank_fields": ["text"],
        "return_documents": True,
        "max_chunks_per_doc": 5,
        "top_n": 10,
    },
    "strings with max_tokens_per_doc": {
        "documents": PASSAGES,
        "max_tokens_per_doc": 4096,
        "return_documents": True,
    },
    "current": {"documents": PASSAGES, "top_n": None, "max_tokens_per_doc": None, "priority": 0},
}


@pytest.mark.parametrize("shape", list(V2_SHAPES))
def test_every_historical_v2_shape_is_accepted(server, reference_model, shape):
    body = {"model": DEFAULT_MODEL, "query": QUERY, **V2_SHAPES[shape]}
    payload = httpx.post(f"{server.url}/v2/rerank", json=body, timeout=60).json()
    expected = bi_encoder_relevance(reference_model, QUERY, PASSAGES)
    results = payload["results"]
    assert [r["index"] for r in results] == list(expected.argsort()[::-1])
    assert all(r["relevance_score"] == pytest.approx(expected[r["index"]], abs=1e-4) for r in results)
    if body.get("return_documents"):
        assert all(
            r["document"]
            == (body["documents"][r["index"]] if shape == "v1 shape" else {"text": PASSAGES[r["index"]]})
            for r in results
        )
    else:
        assert all("document" not in r for r in results)


def test_model_is_optional_in_v1(v1):
    response = v1.rerank(query=QUERY, documents=PASSAGES)
    assert response.results[0].index == RELEVANT
    assert response.model == DEFAULT_MODEL


def test_long_document_scores_as_its_best_chunk(v1, reference_model):
    long_doc = FILLER + "Paris is the capital and most populous city of France."
    documents = [long_doc, PASSAGES[0]]
    response = v1.rerank(model=DEFAULT_MODEL, query=QUERY, documents=documents)
    assert response.results[0].index == 0  # the answer sits past the model's 256-token limit
    assert scores_by_index(response.results)[0] == pytest.approx(
        best_chunk_relevance(reference_model, QUERY, long_doc), abs=1e-4
    )
    first_only = v1.rerank(model=DEFAULT_MODEL, query=QUERY, documents=documents, max_chunks_per_doc=1)
    assert scores_by_index(first_only.results)[0] == pytest.approx(
        best_chunk_relevance(reference_model, QUERY, long_doc, max_chunks=1), abs=1e-4
    )
    assert scores_by_index(first_only.results)[0] < scores_by_index(response.results)[0] - 0.05
    assert response.meta.billed_units.search_units == 1


def test_max_tokens_per_doc_sets_the_chunk_size(v2, reference_model):
    document = "Bananas are yellow and sweet. " * 3 + "Paris is the capital of France. " + "Cats purr. " * 3
    response = v2.rerank(model=DEFAULT_MODEL, query=QUERY, documents=[document], max_tokens_per_doc=8)
    chunks = split_at_tokens(reference_model.tokenizer, document, 8)
    assert len(chunks) > 3
    expected = bi_encoder_relevance(reference_model, QUERY, chunks).max()
    assert response.results[0].relevance_score == pytest.approx(expected, abs=1e-4)
    assert response.meta.tokens.input_tokens > len(reference_model.tokenizer(document)["input_ids"])


def concurrent_cases() -> list[tuple[str, list[str]]]:
    cases = [(query, passages) for query, passages, _ in RANKING_CASES]
    cases += [(f"{QUERY} {i}", PASSAGES[i:] + PASSAGES[:i]) for i in range(len(PASSAGES))]
    return cases


def test_concurrent_requests_do_not_mix_up_results(server):
    cases = concurrent_cases()

    def ranking(case):
        query, documents = case
        body = {"model": DEFAULT_MODEL, "query": query, "documents": documents, "return_documents": True}
        results = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=120).json()["results"]
        return [(r["index"], r["document"]["text"], r["relevance_score"]) for r in results]

    solo = [ranking(case) for case in cases]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ranking, cases * 4))
    for i, got in enumerate(together):
        want = solo[i % len(cases)]
        assert [(index, text) for index, text, _ in got] == [(index, text) for index, text, _ in want]
        assert [s for *_, s in got] == pytest.approx([s for *_, s in want], abs=1e-5)


def test_concurrent_async_v2_clients(server):
    cases = concurrent_cases()

    async def rank_all():
        client = cohere.AsyncClientV2(base_url=server.url, api_key="x", timeout=120)
        responses = await asyncio.gather(
            *(client.rerank(model=DEFAULT_MODEL, query=q, documents=d) for q, d in cases * 3)
        )
        return [[r.index for r in response.results] for response in responses]

    solo = [
        [
            r.index
            for r in cohere.ClientV2(base_url=server.url, api_key="x")
            .rerank(model=DEFAULT_MODEL, query=q, documents=d)
            .results
        ]
        for q, d in cases
    ]
    assert asyncio.run(rank_all()) == solo * 3
