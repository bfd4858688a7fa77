"""Cohere embed wire format, v1 and v2.

Specs: https://docs.cohere.com/v1/reference/embed and https://docs.cohere.com/reference/embed (v2).
v1 answers ``embeddings_floats`` (a bare list of float lists) when no ``embedding_types`` are asked, and
``embeddings_by_type`` otherwise; v2 always answers by type (``float`` by default). Integer types follow
``gateway.protocol.quantization``; v2's ``base64`` is base64 of the little-endian float32 bytes of each vector
(the same encodings as the OpenAI route's ``encoding_format``).
Errors are ``{"message": ...}``. Images are not supported (400).
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec
import numpy as np

from gateway.errors import GatewayError, InvalidRequest
from gateway.protocol.openai import encode_rows

MAX_TEXTS = 96  # Cohere's limit per call
InputType = Literal["search_document", "search_query", "classification", "clustering"]
EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary"]
EmbeddingTypeV2 = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]
Truncate = Literal["NONE", "START", "END"]
# input_type -> the model prompt it selects (see gateway.serving.service.named_prompt)
PROMPT_NAMES = {"search_query": "query", "search_document": "document",
                "classification": "classification", "clustering": "clustering"}


class EmbedRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/embed`` body."""

    texts: list[str] | None = None
    images: list[str] | None = None
    model: str | None = None  # optional in v1: the server's first embedding model
    input_type: InputType | None = None
    embedding_types: list[EmbeddingType] | None = None
    truncate: Truncate | None = None  # None: the model's truncation policy (END unless configured to reject)


class TextContent(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class ImageUrlContent(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: dict | None = None


class EmbedInput(msgspec.Struct):
    """A v2 ``inputs`` item: content parts; the text parts of one item are embedded together."""

    content: list[TextContent | ImageUrlContent]


class EmbedRequestV2(EmbedRequest, kw_only=True):
    """``POST /v2/embed`` body: v1's fields plus ``inputs``, ``max_tokens`` and ``output_dimension``."""

    embedding_types: list[EmbeddingTypeV2] | None = None
    inputs: list[EmbedInput] | None = None
    max_tokens: int | None = None
    output_dimension: int | None = None
    priority: int | None = None  # accepted and ignored: requests are served in arrival order


class ApiVersion(msgspec.Struct):
    version: str


class BilledUnits(msgspec.Struct):
    input_tokens: int


class Meta(msgspec.Struct):
    api_version: ApiVersion
    billed_units: BilledUnits


class EmbedFloatsResponse(msgspec.Struct):
    id: str
    embeddings: list[list[float]]
    texts: list[str]
    meta: Meta
    response_type: str = "embeddings_floats"


class EmbedByTypeResponse(msgspec.Struct):
    id: str
    embeddings: dict[str, list]  # type name -> one row per text (float/int lists, or base64 strings)
    texts: list[str]
    meta: Meta
    response_type: str = "embeddings_by_type"


def request_texts(request: EmbedRequest) -> tuple[list[str], str]:
    """The texts to embed and the field they came from (``texts`` or ``inputs``).

    Raises:
        InvalidRequest: images, both or neither of ``texts``/``inputs``, an ``inputs`` item without text,
            or more than ``MAX_TEXTS`` texts.
    """
    inputs = getattr(request, "inputs", None)
    if request.images:
        raise InvalidRequest("this server embeds text only; send 'texts' instead of 'images'", param="images")
    if (request.texts is None) == (inputs is None):
        raise InvalidRequest("send exactly one of 'texts' and 'inputs'", param="texts")
    if inputs is None:
        texts, param = list(request.texts), "texts"
    else:
        texts, param = [_input_text(item, i) for i, item in enumerate(inputs)], "inputs"
    if len(texts) > MAX_TEXTS:
        raise InvalidRequest(f"'{param}' has {len(texts)} items; at most {MAX_TEXTS} are allowed",
                             param=param)
    return texts, param


def _input_text(item: EmbedInput, index: int) -> str:
    """The text parts of one v2 input, joined by a space. Raises InvalidRequest for images or no text."""
    if any(isinstance(part, ImageUrlContent) for part in item.content):
        raise InvalidRequest(f"'inputs[{index}]' holds an image; this server embeds text only",
                             param="inputs")
    if not item.content:
        raise InvalidRequest(f"'inputs[{index}].content' must not be empty", param="inputs")
    return " ".join(part.text for part in item.content)


def truncation(truncate: Truncate | None) -> tuple[bool | None, Literal["right", "left"]]:
    """Cohere ``truncate`` -> (truncate, side) for ``service.embed_texts``: START keeps the end."""
    if truncate is None:
        return None, "right"
    return truncate != "NONE", "left" if truncate == "START" else "right"


def encode_types(vectors: np.ndarray, types: list[str]) -> dict[str, list]:
    """``(n, dim)`` float32 -> ``{type: rows}`` for each requested type, in request order.

    Raises:
        InvalidRequest: a bit type with ``dim`` not divisible by 8 (param ``embedding_types``).
    """
    return {kind: encode_rows(vectors, kind, "embedding_types") for kind in dict.fromkeys(types)}


def to_embed_response(vectors: np.ndarray, texts: list[str], types: list[str] | None, tokens: int,
                      api_version: str) -> bytes:
    """Encode a v1 (``api_version="1"``) or v2 response: by type, or floats for v1 without types."""
    meta = Meta(ApiVersion(api_version), BilledUnits(tokens))
    response_id = str(uuid.uuid4())
    if api_version == "1" and not types:
        return msgspec.json.encode(EmbedFloatsResponse(response_id, vectors.tolist(), texts, meta))
    embeddings = encode_types(vectors, types or ["float"])
    return msgspec.json.encode(EmbedByTypeResponse(response_id, embeddings, texts, meta))


def error_body(error: GatewayError) -> dict:
    """Cohere's ``{"message": ...}``."""
    return {"message": error.message}
