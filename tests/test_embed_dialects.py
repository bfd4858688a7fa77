"""Pure pieces of the Cohere embed and TEI dialects: prompt selection, truncation, errors, offsets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.config import ModelConfig
from gateway.engines import ModelSpec, TokenSpan
from gateway.errors import EngineFailure, InvalidRequest, NotReady, Overloaded
from gateway.protocol import cohere_embed, tei
from gateway.protocol.cohere_embed import (
    EmbedInput,
    EmbedRequest,
    EmbedRequestV2,
    ImageUrlContent,
    TextContent,
)
from gateway.serving.registry import ServedModel
from gateway.serving.service import named_prompt


def served_with(prompts: dict[str, str], **config) -> ServedModel:
    spec = ModelSpec(name="m", task="embed", max_tokens=8, dim=8, engine="torch", device="cpu",
                     prompts=prompts)
    return ServedModel(ModelConfig(name="m", **config), "torch", state="ready",
                       engine=SimpleNamespace(spec=spec), runner=SimpleNamespace())


@pytest.mark.parametrize("input_type, expected", [
    ("search_query", "q: "), ("search_document", "p: "), ("classification", "c: "), ("clustering", None),
])
def test_input_type_selects_the_model_prompt(input_type, expected):
    served = served_with({"query": "q: ", "passage": "p: ", "classification": "c: "})
    assert named_prompt(served, cohere_embed.PROMPT_NAMES[input_type]) == expected


def test_configured_prompts_win_over_the_model_prompts():
    served = served_with({"query": "q: ", "document": "d: "}, query_prompt="Q: ", document_prompt="")
    assert named_prompt(served, "query") == "Q: "
    assert named_prompt(served, "document") is None  # configured empty: no prompt


def test_unloaded_model_has_no_prompts_yet():
    with pytest.raises(NotReady):
        named_prompt(ServedModel(ModelConfig(name="m"), "torch"), "query")


@pytest.mark.parametrize("truncate, expected", [
    (None, (None, "right")), ("END", (True, "right")), ("START", (True, "left")), ("NONE", (False, "right")),
])
def test_cohere_truncate_maps_to_a_side(truncate, expected):
    assert cohere_embed.truncation(truncate) == expected


def test_cohere_v2_inputs_join_their_text_parts():
    inputs = [EmbedInput([TextContent("a"), TextContent("b")]), EmbedInput([TextContent("c")])]
    items, param = cohere_embed.request_items(EmbedRequestV2(inputs=inputs))
    assert ([item.text for item in items], param) == (["a b", "c"], "inputs")
    items, param = cohere_embed.request_items(EmbedRequest(texts=["x"]))
    assert ([item.text for item in items], param) == (["x"], "texts")


@pytest.mark.parametrize("request_", [
    EmbedRequest(),
    EmbedRequest(texts=["x"], images=["data:"]),
    EmbedRequestV2(inputs=[EmbedInput([TextContent("a"), ImageUrlContent({})])]),
    EmbedRequestV2(inputs=[EmbedInput([])]),
    EmbedRequest(texts=["x"] * 97),
])
def test_cohere_requests_without_usable_inputs_are_refused(request_):
    with pytest.raises(InvalidRequest):
        cohere_embed.request_items(request_)


def test_tei_offsets_are_utf8_bytes():
    text = "é a"
    spans = [TokenSpan(1, "[CLS]", True, None, None), TokenSpan(2, "é", False, 0, 1),
             TokenSpan(3, "a", False, 2, 3)]
    tokens = tei.to_simple_tokens(text, spans)
    assert [(t.start, t.stop) for t in tokens] == [(None, None), (0, 2), (3, 4)]
    assert all(text.encode()[t.start:t.stop].decode() == t.text for t in tokens[1:])


@pytest.mark.parametrize("error, error_type", [
    (tei.TokenizerError("bad id"), "Tokenizer"), (InvalidRequest("bad"), "Validation"),
    (Overloaded("busy"), "Overloaded"), (NotReady("loading"), "Unhealthy"),
    (EngineFailure("boom"), "Backend"),
])
def test_tei_error_types(error, error_type):
    assert tei.error_body(error) == {"error": error.message, "error_type": error_type}


def test_tei_ids_accept_one_list_or_many():
    assert tei.id_lists([1, 2]) == [[1, 2]]
    assert tei.id_lists([[1], [2, 3]]) == [[1], [2, 3]]
    for bad in ([], [1, [2]]):
        with pytest.raises(InvalidRequest):
            tei.id_lists(bad)
