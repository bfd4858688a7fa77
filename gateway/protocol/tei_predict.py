"""TEI's ``POST /predict``: class scores of sequence classifiers (and of one-logit rerankers).

Spec: TEI ``router/src/http/types.rs`` (``PredictRequest``, ``PredictInput``, ``Prediction``) and
``server.rs`` (``predict``). ``inputs`` is, as TEI reads it: a string (one text); a list of one or two
strings (one text, or one ``[text, text_pair]`` pair); or a list of such lists (a batch, each one text or
one pair). The answer is ``[{"score", "label"}, ...]`` over every label, best first, for one input, and a
list of those for a batch. Scores are the softmax of the logits (the sigmoid of a single logit), or the
logits with ``raw_scores: true``. ``truncate`` (default: the model's policy) and
``truncation_direction`` as on ``/embed``; ``model`` is an optional extension. Errors are TEI's
``{"error", "error_type"}`` (``gateway.protocol.tei.error_body``).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from gateway.errors import InvalidRequest
from gateway.protocol.nulls import NullAsDefault
from gateway.protocol.tei import EmptyInput

EXPECTED = "a string, a pair of strings [string, string] or a batch of mixed strings and pairs " \
           "[[string], [string, string], ...]"


class PredictRequest(NullAsDefault, kw_only=True):
    """``POST /predict`` body."""

    inputs: str | list[str | list[str]]
    truncate: bool | None = None  # None: the model's truncation policy
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = "Right"
    raw_scores: bool | None = False
    model: str | None = None


class Prediction(msgspec.Struct):
    score: float
    label: str


def predict_inputs(inputs: str | list[str | list[str]]) -> tuple[list[str | tuple[str, str]], bool]:
    """TEI's ``PredictInput`` -> (the inputs, texts or ``(text, text_pair)`` pairs; whether it is a batch).

    Raises:
        EmptyInput: an empty list.
        InvalidRequest: a list of three or more strings, a batch entry that is not a list of
            one or two strings, or strings mixed with lists (TEI's deserialization errors).
    """
    if isinstance(inputs, str):
        return [inputs], False
    if not inputs:
        raise EmptyInput(f"'inputs' is empty; expected {EXPECTED}", param="inputs")
    if isinstance(inputs[0], str):
        if len(inputs) > 2 or not all(isinstance(item, str) for item in inputs):
            raise InvalidRequest(f"'inputs' must be {EXPECTED}", param="inputs")
        return [inputs[0] if len(inputs) == 1 else (inputs[0], inputs[1])], False
    batch: list[str | tuple[str, str]] = []
    for index, item in enumerate(inputs):
        if not isinstance(item, list) or not 1 <= len(item) <= 2:
            raise InvalidRequest(f"'inputs[{index}]' must be [string] or [string, string] in a batch",
                                 param="inputs")
        batch.append(item[0] if len(item) == 1 else (item[0], item[1]))
    return batch, True


def predictions(scores: np.ndarray, labels: tuple[str, ...]) -> list[Prediction]:
    """One input's ``(labels,)`` scores -> every label with its score, best first (ties: label order)."""
    order = np.argsort(-scores, kind="stable")
    return [Prediction(float(scores[i]), labels[int(i)]) for i in order]


def to_response(scores: np.ndarray, labels: tuple[str, ...], batch: bool) -> bytes:
    """``(n, labels)`` scores -> TEI's answer: one input's predictions, or a list of them for a batch."""
    rows = [predictions(row, labels) for row in scores]
    return msgspec.json.encode(rows if batch else rows[0])
