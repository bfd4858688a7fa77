"""tkr-embed's own API (``tkr_embed/api/models.py`` and ``server.py``): ``POST /embed/text``,
``/embed/image`` (a multipart ``file``), ``/embed/multimodal`` (``text`` and/or an ``image`` file) and
``/similarity`` on two embedding matrices; errors in FastAPI's ``{"detail"}`` shapes
(``gateway.protocol.fastapi_errors``).

Every embedding answer is ``{"embeddings", "shape": [n, dim], "model", "processing_time"}`` (seconds).
``/similarity``'s ``cosine`` is the cosine of the two vectors (tkr-embed takes the plain dot product, the
same number for the unit vectors it returns); ``euclidean`` is ``1 / (1 + distance)`` as tkr-embed
computes it.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from gateway.errors import InvalidRequest
from gateway.protocol.fastapi_errors import ValidationFailed
from gateway.protocol.nulls import NullAsDefault

MAX_TEXTS = 100
MAX_SIMILARITY_CELLS = 1_000_000  # query rows x candidate rows: the answer is that many floats
# what a part may declare: image/* types the media layer decodes, and what clients send when they do not know
DECLARED_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/pjpeg": "jpeg",
                    "image/webp": "webp", "image/gif": "gif"}
UNTYPED = ("application/octet-stream", "")
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class TextEmbeddingRequest(NullAsDefault, kw_only=True):
    """``POST /embed/text`` body."""

    texts: list[str]
    normalize: bool | None = True
    model: str | None = None


class SimilarityRequest(NullAsDefault, kw_only=True):
    """``POST /similarity`` body (tkr-embed's; TEI's ``{"inputs": ...}`` is told apart by its keys)."""

    query_embeddings: list[list[float]]
    candidate_embeddings: list[list[float]]
    metric: Literal["cosine", "euclidean"] | None = "cosine"


class Embeddings(msgspec.Struct):
    """tkr-embed's ``EmbeddingResponse``: ``shape`` is ``[n, dim]``, ``processing_time`` in seconds."""

    embeddings: list[list[float]]
    shape: list[int]
    model: str
    processing_time: float


def check_texts(texts: list[str]) -> None:
    """Raises ValidationFailed (422) for 0 or more than 100 texts (tkr-embed's ``min/max_items``)."""
    if not 1 <= len(texts) <= MAX_TEXTS:
        raise ValidationFailed(f"ensure this value has at least 1 and at most {MAX_TEXTS} items, got "
                               f"{len(texts)}", ["body", "texts"], kind="value_error.list")


def form_bool(value: object, field: str, default: bool = True) -> bool:
    """A form field's boolean (``true``/``false``/``1``/``0``...); None is ``default``.

    Raises:
        ValidationFailed: anything else (422).
    """
    if value is None:
        return default
    text = value.strip().lower() if isinstance(value, str) else None
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValidationFailed("Input should be a valid boolean", ["body", field], kind="bool_parsing")


def sniff_format(data: bytes) -> str | None:
    """The image format the first bytes announce (``png``, ``jpeg``, ``gif``, ``webp``), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_declared_type(declared: str, data: bytes, field: str) -> None:
    """The part's declared Content-Type against the bytes: it must be an image type (or untyped:
    ``application/octet-stream``), and a PNG, JPEG, WebP or GIF type must match the bytes' own format.
    Bytes of no known format are left to the decoder, which refuses them with its own message.

    Raises:
        InvalidRequest: a non-image type, or an image type the bytes contradict (400).
    """
    declared = declared.split(";")[0].strip().lower()
    if declared not in UNTYPED and not declared.startswith("image/"):
        raise InvalidRequest(f"File must be an image: the '{field}' part is declared {declared!r}",
                             param=field)
    real, expected = sniff_format(data), DECLARED_FORMATS.get(declared)
    if real and expected and real != expected:
        raise InvalidRequest(f"File must be a valid image: the '{field}' part is declared {declared!r} but "
                             f"holds a {real.upper()} image", param=field)


def embeddings(vectors: np.ndarray, model: str, seconds: float) -> Embeddings:
    """tkr-embed's ``EmbeddingResponse`` of ``(n, dim)`` vectors."""
    return Embeddings(vectors.tolist(), list(vectors.shape), model, seconds)


def similarity_matrices(data: SimilarityRequest) -> tuple[np.ndarray, np.ndarray]:
    """The two matrices, ``(q, dim)`` and ``(c, dim)`` float64.

    Raises:
        ValidationFailed: an empty matrix, ragged rows, vectors of different sizes, or more than
            ``MAX_SIMILARITY_CELLS`` pairs (422).
    """
    matrices = []
    for field, rows in (("query_embeddings", data.query_embeddings),
                        ("candidate_embeddings", data.candidate_embeddings)):
        if not rows or not rows[0]:
            raise ValidationFailed(f"'{field}' must hold at least one non-empty vector", ["body", field])
        size = len(rows[0])
        ragged = next((i for i, row in enumerate(rows) if len(row) != size), None)
        if ragged is not None:
            raise ValidationFailed(f"'{field}[{ragged}]' has {len(rows[ragged])} values, '{field}[0]' "
                                   f"{size}: every vector must have the same size", ["body", field, ragged])
        matrices.append(np.asarray(rows, dtype=np.float64))
    query, candidates = matrices
    if query.shape[1] != candidates.shape[1]:
        raise ValidationFailed(f"query vectors have {query.shape[1]} values, candidate vectors "
                               f"{candidates.shape[1]}: they must have the same size",
                               ["body", "candidate_embeddings"])
    if len(query) * len(candidates) > MAX_SIMILARITY_CELLS:
        raise ValidationFailed(f"{len(query)} x {len(candidates)} pairs; at most {MAX_SIMILARITY_CELLS:,} "
                               "similarities per request", ["body", "candidate_embeddings"])
    if not (np.isfinite(query).all() and np.isfinite(candidates).all()):
        raise ValidationFailed("every value must be a finite number", ["body"])
    return query, candidates


def similarities(query: np.ndarray, candidates: np.ndarray, metric: str) -> np.ndarray:
    """``(q, c)``: cosine (0 for a zero vector), or ``1 / (1 + euclidean distance)``."""
    if metric == "euclidean":
        scale = max(np.abs(query).max(), np.abs(candidates).max(), 1e-300)  # no overflow in the squares
        q, c = query / scale, candidates / scale  # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: no (q, c, dim) array
        squared = (q * q).sum(axis=1)[:, None] + (c * c).sum(axis=1)[None, :] - 2.0 * (q @ c.T)
        return 1.0 / (1.0 + np.sqrt(np.maximum(squared, 0.0)) * scale)
    return unit_rows(query) @ unit_rows(candidates).T


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length without overflow (scaled by their largest value first); zero rows stay 0."""
    peak = np.abs(matrix).max(axis=1, keepdims=True)
    scaled = matrix / np.where(peak > 0, peak, 1.0)
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    return scaled / np.where(norms > 0, norms, 1.0)


class SimilarityResponse(msgspec.Struct):
    """tkr-embed's ``SimilarityResponse`` (documents ``similarity_response``'s dict): ``(q, c)`` scores."""

    similarities: list[list[float]]
    shape: list[int]
    metric: str
    processing_time: float


def similarity_response(matrix: np.ndarray, metric: str, seconds: float) -> dict:
    """tkr-embed's ``SimilarityResponse``."""
    return {"similarities": matrix.tolist(), "shape": list(matrix.shape), "metric": metric,
            "processing_time": seconds}
