"""Voyage multimodal embeddings wire format: ``POST /v1/multimodalembeddings``.

Spec: https://docs.voyageai.com/reference/multimodal-embeddings-api. Each input is ``{"content": [...]}``
of ``text``, ``image_url`` and ``image_base64`` segments (the voyageai client sends PIL images as
``image_base64`` data URIs), embedded into one vector: a model that does not fuse (CLIP, SigLIP) takes
one segment per input.

- ``input_type`` (``query`` / ``document``) selects the model's prompt.
- ``truncation`` false refuses over-long texts (absent: the model's policy).
- ``output_encoding`` / ``encoding_format`` ``"base64"``: base64 of the little-endian values (the
  voyageai client asks for it and decodes it itself); ``output_dtype`` quantizes as
  ``gateway.protocol.quantization``; ``output_dimension`` is Matryoshka truncation.
- ``usage`` is Voyage's whole object: ``text_tokens``, ``image_pixels``, ``video_pixels`` (always 0:
  videos are refused) and ``total_tokens`` (text tokens plus the images' cost in the model's tokens).

Errors are ``{"detail": ...}``, as Voyage's.
"""

from __future__ import annotations

import base64
from typing import Literal

import msgspec
import numpy as np

from gateway.errors import GatewayError, InvalidRequest
from gateway.inputs import InputItem, Part, TextPart
from gateway.protocol.image_parts import image_part
from gateway.protocol.openai import float_rows
from gateway.protocol.quantization import check_packable, quantize

OutputDtype = Literal["float", "int8", "uint8", "binary", "ubinary"]
PROMPT_NAMES = {"query": "query", "document": "document"}


class TextSegment(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class ImageUrlSegment(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: str


class ImageBase64Segment(msgspec.Struct, tag_field="type", tag="image_base64"):
    image_base64: str  # a data URI (what the voyageai client sends) or raw base64


class VideoUrlSegment(msgspec.Struct, tag_field="type", tag="video_url"):
    video_url: str


class VideoBase64Segment(msgspec.Struct, tag_field="type", tag="video_base64"):
    video_base64: str


Segment = TextSegment | ImageUrlSegment | ImageBase64Segment | VideoUrlSegment | VideoBase64Segment


class MultimodalInput(msgspec.Struct):
    content: list[Segment]


class MultimodalRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/multimodalembeddings`` body (JSON null is "absent" in every optional field)."""

    inputs: list[MultimodalInput]
    model: str
    input_type: Literal["query", "document"] | None = None
    truncation: bool | None = None  # None: the model's truncation policy (truncate, unless configured)
    output_encoding: Literal["base64"] | None = None
    encoding_format: Literal["base64", "float"] | None = None  # what the voyageai client sends
    output_dtype: OutputDtype | None = None
    output_dimension: int | None = None


class EmbeddingRow(msgspec.Struct):
    embedding: list | str
    index: int
    object: str = "embedding"


class MultimodalUsage(msgspec.Struct):
    text_tokens: int
    image_pixels: int
    video_pixels: int
    total_tokens: int


class MultimodalResponse(msgspec.Struct):
    data: list[EmbeddingRow]
    model: str
    usage: MultimodalUsage
    object: str = "list"


def request_items(request: MultimodalRequest) -> list[InputItem]:
    """One input of parts per ``inputs`` entry.

    Raises:
        InvalidRequest: no inputs, an empty ``content`` or a video segment (param ``inputs``).
    """
    if not request.inputs:
        raise InvalidRequest("'inputs' must not be empty", param="inputs")
    return [InputItem(_parts(entry, i)) for i, entry in enumerate(request.inputs)]


def _parts(entry: MultimodalInput, index: int) -> list[Part]:
    if not entry.content:
        raise InvalidRequest(f"'inputs[{index}].content' must not be empty", param="inputs")
    parts: list[Part] = []
    for j, segment in enumerate(entry.content):
        where = f"inputs[{index}].content[{j}]"
        if isinstance(segment, TextSegment):
            parts.append(TextPart(segment.text))
        elif isinstance(segment, ImageUrlSegment):
            parts.append(image_part(segment.image_url, f"{where}.image_url", base64=False))
        elif isinstance(segment, ImageBase64Segment):
            parts.append(image_part(segment.image_base64, f"{where}.image_base64", base64=True))
        else:
            raise InvalidRequest(f"'{where}': videos are not supported by this server", param="inputs")
    return parts


def wants_base64(request: MultimodalRequest) -> bool:
    return request.output_encoding == "base64" or request.encoding_format == "base64"


def encode_rows(vectors: np.ndarray, dtype: str, as_base64: bool) -> list:
    """``(n, dim)`` float32 -> float lists, integer lists (quantized), or base64 of the little-endian
    values (float32, or the quantized bytes).

    Raises:
        InvalidRequest: a bit dtype with ``dim`` not divisible by 8 (param ``output_dtype``).
    """
    if dtype == "float":
        if not as_base64:
            return float_rows(vectors)
        values = np.ascontiguousarray(vectors, dtype="<f4")
    else:
        try:
            check_packable(vectors.shape[1], dtype)
        except ValueError as exc:
            raise InvalidRequest(f"'output_dtype': {exc}", param="output_dtype") from None
        values = quantize(vectors, dtype)
        if not as_base64:
            return values.tolist()
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in values]


def to_response(vectors: np.ndarray, request: MultimodalRequest, model: str, *, text_tokens: int,
                image_pixels: int, total_tokens: int) -> bytes:
    """Encode the answer (rows in input order)."""
    rows = encode_rows(vectors, request.output_dtype or "float", wants_base64(request))
    usage = MultimodalUsage(text_tokens, image_pixels, 0, total_tokens)
    return msgspec.json.encode(MultimodalResponse([EmbeddingRow(row, i) for i, row in enumerate(rows)],
                                                  model, usage))


def error_body(error: GatewayError) -> dict:
    """Voyage's ``{"detail": ...}``."""
    return {"detail": error.message}
