"""TEI's ``POST /similarity``: ``{"inputs": {"source_sentence", "sentences"}, "parameters"?}`` -> the cosine
of each sentence's embedding with the source sentence's, ``[float, ...]`` in sentence order.

Spec: https://huggingface.github.io/text-embeddings-inference/ (``SimilarityRequest``). ``parameters``
takes TEI's ``truncate``, ``truncation_direction`` and ``prompt_name``; ``model`` is an optional
extension (TEI serves one model). Errors are TEI's ``{"error", "error_type"}``.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from gateway.protocol.nulls import NullAsDefault


class SimilarityInput(msgspec.Struct):
    """``inputs``: the sentence to compare with, and the sentences compared."""

    source_sentence: str
    sentences: list[str]


class SimilarityParameters(NullAsDefault, kw_only=True):
    """``parameters``: as on TEI's ``/embed``."""

    truncate: bool | None = None  # None: the model's truncation policy
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = "Right"
    prompt_name: str | None = None


class SimilarityRequest(NullAsDefault, kw_only=True):
    """TEI ``POST /similarity`` body."""

    inputs: SimilarityInput
    parameters: SimilarityParameters | None = None
    model: str | None = None


def is_tei_body(body: object) -> bool:
    """Whether a decoded ``/similarity`` body is TEI's (an object with ``inputs``), not tkr-embed's."""
    return isinstance(body, dict) and "inputs" in body


def cosines(vectors: np.ndarray) -> list[float]:
    """``(1 + n, dim)``, the source sentence first -> the ``n`` cosines with it (0 for a zero vector)."""
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    return (unit[1:] @ unit[0]).astype(float).tolist()
