"""Cohere embed wire format, v1 and v2.

Specs: https://docs.cohere.com/v1/reference/embed and https://docs.cohere.com/reference/embed (v2).
v1 answers ``embeddings_floats`` (a bare list of float lists) when no ``embedding_types`` are asked, and
``embeddings_by_type`` otherwise; v2 always answers by type (``float`` by default). Integer types follow
``gateway.protocol.quantization``; v2's ``base64`` is base64 of the little-endian float32 bytes of each vector
(the same encodings as the OpenAI route's ``encoding_format``).
Images: v1/v2 ``images`` (data URIs; Cohere takes one per call, this server up to ``MAX_TEXTS``) and v2
``inputs[].content[]`` parts ``{"type": "image_url", "image_url": {"url": ...}}`` (or the bare url string),
with ``input_type: "image"``; the response then lists each image's ``width``, ``height``, ``format`` and
``bit_depth`` in ``images`` and bills ``meta.billed_units.images`` (and ``image_tokens``: what the
images cost the model). A model that embeds text only answers images with a 400 naming it.
Errors are ``{"message": ...}``.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from gateway.errors import GatewayError, InvalidRequest
from gateway.inputs import InputItem, Part, TextPart
from gateway.protocol.ids import uuid4_str
from gateway.protocol.image_parts import image_part, url_of
from gateway.protocol.openai import encode_rows, float_rows

MAX_TEXTS = 96  # Cohere's limit per call
InputType = Literal["search_document", "search_query", "classification", "clustering", "image"]
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
    image_url: dict | str | None = None  # {"url": ...}, or the url itself


class EmbedInput(msgspec.Struct):
    """A v2 ``inputs`` item: content parts, embedded into one vector (text parts joined by a space; text and
    images together only by a model that fuses them)."""

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


class BilledUnits(msgspec.Struct, omit_defaults=True):
    """What Cohere bills: ``input_tokens`` (text), and for images ``images`` and ``image_tokens``."""

    input_tokens: int | None = None
    images: int | None = None
    image_tokens: int | None = None


class ImageMeta(msgspec.Struct):
    """One embedded image, as Cohere's response describes it."""

    width: int
    height: int
    format: str
    bit_depth: int


class Meta(msgspec.Struct):
    api_version: ApiVersion
    billed_units: BilledUnits


class EmbedFloatsResponse(msgspec.Struct):
    id: str
    embeddings: list[msgspec.Raw]  # one JSON float array per row (``float_rows``)
    texts: list[str]
    meta: Meta
    response_type: str = "embeddings_floats"
    images: list[ImageMeta] | msgspec.UnsetType = msgspec.UNSET  # only when images were embedded


class EmbedByTypeResponse(msgspec.Struct):
    id: str
    embeddings: dict[str, list]  # type name -> one row per text (float/int lists, or base64 strings)
    texts: list[str]
    meta: Meta
    response_type: str = "embeddings_by_type"
    images: list[ImageMeta] | msgspec.UnsetType = msgspec.UNSET  # only when images were embedded


def request_items(request: EmbedRequest) -> tuple[list[InputItem], str]:
    """The inputs to embed and the field they came from (``texts``, ``images`` or ``inputs``).

    Raises:
        InvalidRequest: none or several of those fields, an empty ``inputs`` item, an image part without a
            url, more than ``MAX_TEXTS`` inputs, or ``input_type: "image"`` with a text-only input.
    """
    fields = {"texts": request.texts, "images": request.images}
    if isinstance(request, EmbedRequestV2):
        fields["inputs"] = request.inputs
    given = [name for name, value in fields.items() if value is not None]
    if len(given) != 1:
        names = [f"'{name}'" for name in fields]
        raise InvalidRequest(f"send exactly one of {', '.join(names[:-1])} or {names[-1]}", param="texts")
    param = given[0]
    if param == "texts":
        items = [InputItem.of_text(text) for text in request.texts]
    elif param == "images":
        items = [InputItem([image_part(url, f"images[{i}]", base64=False)])
                 for i, url in enumerate(request.images)]
    else:
        items = [InputItem(_input_parts(item, i)) for i, item in enumerate(request.inputs)]
    if len(items) > MAX_TEXTS:
        raise InvalidRequest(f"'{param}' has {len(items)} items; at most {MAX_TEXTS} are allowed",
                             param=param)
    if request.input_type == "image" and any(not item.images for item in items):
        raise InvalidRequest("'input_type' 'image' is for image inputs; texts take search_document, "
                             "search_query, classification or clustering", param="input_type")
    return items, param


def _input_parts(item: EmbedInput, index: int) -> list[Part]:
    """The parts of one v2 input. Raises InvalidRequest for an empty content list or an image without url."""
    if not item.content:
        raise InvalidRequest(f"'inputs[{index}].content' must not be empty", param="inputs")
    return [TextPart(part.text) if isinstance(part, TextContent) else
            image_part(url_of(part.image_url), f"inputs[{index}].content[{j}].image_url", base64=False)
            for j, part in enumerate(item.content)]


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
                      api_version: str, images: list[ImageMeta] | None = None,
                      image_tokens: int = 0) -> bytes:
    """Encode a v1 (``api_version="1"``) or v2 response: by type, or floats for v1 without types.

    Args:
        tokens: text tokens billed; images: the embedded images (None: a text-only request);
        image_tokens: what the images cost the model.
    """
    billed = BilledUnits(tokens) if not images else \
        BilledUnits(tokens or None, images=len(images), image_tokens=image_tokens)
    meta = Meta(ApiVersion(api_version), billed)
    response_id, described = uuid4_str(), images or msgspec.UNSET
    if api_version == "1" and not types:
        return msgspec.json.encode(EmbedFloatsResponse(response_id, float_rows(vectors), texts, meta,
                                                       images=described))
    embeddings = encode_types(vectors, types or ["float"])
    return msgspec.json.encode(EmbedByTypeResponse(response_id, embeddings, texts, meta, images=described))


def error_body(error: GatewayError) -> dict:
    """Cohere's ``{"message": ...}``."""
    return {"message": error.message}
