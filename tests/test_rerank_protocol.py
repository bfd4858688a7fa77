"""Unit tests of the pure rerank converters: Cohere/Jina and TEI request parsing, responses, error bodies."""

from __future__ import annotations

import msgspec
import pytest

from gateway.errors import EngineFailure, InvalidRequest, ModelNotFound, NotReady, Overloaded
from gateway.http.routes.rerank import decode_body
from gateway.protocol import cohere_rerank, tei_rerank
from gateway.protocol.cohere_rerank import RerankRequest
from gateway.protocol.tei_rerank import TeiRerankRequest


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "query": "q", "documents": ["a", {"text": "b", "id": 1}], "rank_fields": ["text"],'
        b' "top_n": 1, "return_documents": true, "max_chunks_per_doc": 3}',  # Cohere v1 (and the first v2)
        b'{"model": "m", "query": "q", "documents": ["a", "b"], "max_tokens_per_doc": 10,'
        b' "return_documents": false}',  # v2 with strings
        b'{"model": "m", "query": "q", "documents": ["a"], "top_n": null, "max_tokens_per_doc": null,'
        b' "priority": 0}',  # current v2, as LangChain sends it
        b'{"model": "m", "query": "q", "documents": [{"text": "a"}], "top_n": 2,'
        b' "return_documents": true}',  # Jina
    ],
)
def test_every_request_shape_decodes(body):
    request = decode_body(body, RerankRequest)
    assert request.query == "q" and request.documents


def test_document_texts_for_strings_objects_and_rank_fields():
    assert cohere_rerank.document_texts(["a", {"text": "b", "x": 1}], None) == ["a", "b"]
    docs = [{"title": "T", "body": "B", "n": 3}, "plain"]
    assert cohere_rerank.document_texts(docs, ["title", "body"]) == ["T\nB", "plain"]
    assert cohere_rerank.document_texts([{"n": 3, "tags": ["a"]}], ["tags", "n"]) == ['["a"]\n3']


@pytest.mark.parametrize(
    ("documents", "rank_fields", "needle"),
    [
        ([{"title": "x"}], None, "no 'text' field"),
        ([{"text": 5}], None, "not a string"),
        (["ok", {"title": "x"}], ["title", "url"], "documents[1]' has no field 'url'"),
    ],
)
def test_document_texts_rejects_unrankable_objects(documents, rank_fields, needle):
    with pytest.raises(InvalidRequest, match=needle.replace("[", r"\[")) as caught:
        cohere_rerank.document_texts(documents, rank_fields)
    assert caught.value.param == "documents"


def test_response_omits_document_unless_requested_and_echoes_objects_whole():
    documents = ["a", {"text": "b", "id": 7}]
    kwargs = dict(model="m", tokens=12, search_units=1, api_version="2")
    bare = msgspec.json.decode(
        cohere_rerank.to_rerank_response([(1, 0.9), (0, 0.1)], documents, return_documents=False, **kwargs)
    )
    assert bare["results"] == [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]
    assert bare["meta"] == {
        "api_version": {"version": "2"},
        "billed_units": {"search_units": 1},
        "tokens": {"input_tokens": 12, "output_tokens": 0},
    }
    assert bare["usage"] == {"total_tokens": 12} and bare["model"] == "m" and bare["id"]
    full = msgspec.json.decode(
        cohere_rerank.to_rerank_response([(1, 0.9), (0, 0.1)], documents, return_documents=True, **kwargs)
    )
    assert [r["document"] for r in full["results"]] == [{"text": "b", "id": 7}, {"text": "a"}]


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (b"", "The request body is empty: send a JSON object.", None),
        (b"{", "We could not parse the JSON body of your request", None),
        (b"[]", "Invalid request body: Expected `object`, got `array`", None),
        (b'{"documents": ["a"]}', "Missing required parameter: 'query'.", "query"),
        (b'{"query": "q", "documents": ["a"], "top_n": "x"}', "Invalid value for 'top_n'", "top_n"),
        (b'{"query": "q", "documents": ["a", 2]}', "Invalid value for 'documents[1]'", "documents"),
        (
            b'{"query": "q", "documents": [{"text": "a"}], "rank_fields": [1]}',
            "'rank_fields[0]'",
            "rank_fields",
        ),
    ],
)
def test_decode_errors_name_the_field(body, message, param):
    with pytest.raises(InvalidRequest) as caught:
        decode_body(body, RerankRequest)
    assert caught.value.message.startswith(message) or message in caught.value.message
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "is_tei"),
    [
        (b'{"query": "q", "texts": ["a"]}', True),
        (b'{"query": "q", "texts": ["a"], "documents": ["a"]}', False),
        (b'{"query": "q", "documents": ["a"]}', False),
        (b"[1]", False),
        (b"{", False),
    ],
)
def test_tei_bodies_are_told_apart_by_texts(body, is_tei):
    assert tei_rerank.is_tei_body(body) is is_tei


@pytest.mark.parametrize(
    ("truncate", "direction", "model_truncates", "policy"),
    [
        (None, "Right", True, "truncate"),
        (None, "Right", False, "reject"),
        (False, "Right", True, "reject"),
        (True, "Left", False, "truncate_left"),
        (True, "left", True, "truncate_left"),
    ],
)
def test_tei_overflow_policy(truncate, direction, model_truncates, policy):
    request = TeiRerankRequest(query="q", texts=["a"], truncate=truncate, truncation_direction=direction)
    assert tei_rerank.overflow_policy(request, model_truncates) == policy


def test_tei_response_and_error_types():
    assert msgspec.json.decode(tei_rerank.to_tei_response([(1, 0.5), (0, 0.25)], ["a", "b"], False)) == [
        {"index": 1, "score": 0.5},
        {"index": 0, "score": 0.25},
    ]
    assert msgspec.json.decode(tei_rerank.to_tei_response([(1, 0.5)], ["a", "b"], True)) == [
        {"index": 1, "score": 0.5, "text": "b"}
    ]
    kinds = {
        InvalidRequest("x"): "Validation",
        ModelNotFound("x"): "Validation",
        Overloaded("x"): "Overloaded",
        NotReady("x"): "Unhealthy",
        EngineFailure("x"): "Backend",
    }
    for error, kind in kinds.items():
        assert tei_rerank.error_body(error) == {"error": "x", "error_type": kind}
    assert cohere_rerank.error_body(InvalidRequest("bad")) == {"message": "bad", "detail": "bad"}
