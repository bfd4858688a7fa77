"""Wire parsing of the classification and score routes, as their references read bodies: TEI's
``PredictInput`` (a string, one text or pair, or a batch of them), vLLM's score pairing rule (1:1, 1:N, N:N)
and vLLM's error body."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.protocol import tei_predict, vllm, vllm_score
from gateway.protocol.tei import EmptyInput, error_body
from gateway.serving.classify import class_probabilities


@pytest.mark.parametrize("inputs, expected, batch", [
    ("a text", ["a text"], False),
    (["a text"], ["a text"], False),
    (["premise", "hypothesis"], [("premise", "hypothesis")], False),  # two strings: one pair, as TEI reads
    ([["a"], ["b", "c"]], ["a", ("b", "c")], True),
])
def test_tei_predict_inputs(inputs, expected, batch):
    assert tei_predict.predict_inputs(inputs) == (expected, batch)


@pytest.mark.parametrize("inputs", [["a", "b", "c"], [["a"], "b"], [["a", "b", "c"]], [[]], ["a", ["b"]]])
def test_tei_predict_refuses_what_tei_cannot_read(inputs):
    with pytest.raises(InvalidRequest) as refused:
        tei_predict.predict_inputs(inputs)
    assert refused.value.param == "inputs"


def test_tei_predict_empty_list_is_teis_empty_error():
    with pytest.raises(EmptyInput) as refused:
        tei_predict.predict_inputs([])
    assert error_body(refused.value)["error_type"] == "Empty"


def test_tei_predictions_are_best_first_with_every_label():
    body = msgspec.json.decode(tei_predict.to_response(np.array([[0.1, 0.7, 0.2]]), ("a", "b", "c"), False))
    assert body == [{"score": 0.7, "label": "b"}, {"score": 0.2, "label": "c"}, {"score": 0.1, "label": "a"}]
    batch = msgspec.json.decode(tei_predict.to_response(np.array([[0.1, 0.9], [0.6, 0.4]]), ("a", "b"), True))
    assert [[p["label"] for p in row] for row in batch] == [["b", "a"], ["a", "b"]]


@pytest.mark.parametrize("text_1, text_2, expected", [
    ("q", "d", [("q", "d")]),
    ("q", ["d1", "d2"], [("q", "d1"), ("q", "d2")]),
    (["q"], ["d1", "d2"], [("q", "d1"), ("q", "d2")]),
    (["q1", "q2"], ["d1", "d2"], [("q1", "d1"), ("q2", "d2")]),
])
def test_vllm_score_pairs(text_1, text_2, expected):
    assert vllm_score.pairs(vllm_score.ScoreRequest(text_1=text_1, text_2=text_2)) == expected


@pytest.mark.parametrize("text_1, text_2, message", [
    (["q1", "q2"], "d", "Input lengths must be either 1:1, 1:N or N:N"),  # N:1 is not a vLLM pairing
    (["q1", "q2"], ["d1", "d2", "d3"], "Input lengths must be either 1:1, 1:N or N:N"),
    ([], ["d"], "At least one text element must be given"),
    ("q", [], "At least one text_pair element must be given"),
])
def test_vllm_score_refuses_other_pairings(text_1, text_2, message):
    with pytest.raises(InvalidRequest, match=message):
        vllm_score.pairs(vllm_score.ScoreRequest(text_1=text_1, text_2=text_2))


def test_vllm_error_body_is_flat_and_nested():
    body = vllm.error_body(ModelNotFound("no model 'x'", param="model"))
    fields = {"message": "no model 'x'", "type": "NotFoundError", "param": "model", "code": 404}
    assert body == {"object": "error", **fields, "error": fields}
    assert vllm.error_type(400) == "BadRequestError" and vllm.error_type(500) == "InternalServerError"


def test_probabilities_softmax_and_sigmoid():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], dtype=np.float32)  # no overflow
    probabilities = class_probabilities(logits)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    assert probabilities[1].tolist() == [1.0, 0.0, 0.0]
    one_logit = class_probabilities(np.array([[0.0], [2.0]]))[:, 0]
    np.testing.assert_allclose(one_logit, [0.5, 1 / (1 + np.exp(-2))])
