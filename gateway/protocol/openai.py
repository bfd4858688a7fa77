"""OpenAI embeddings and models wire format.

Spec: https://platform.openai.com/docs/api-reference/embeddings/create and
https://platform.openai.com/docs/api-reference/models/list; errors as in
https://platform.openai.com/docs/guides/error-codes.

Extension (images, as no OpenAI model embeds them): ``input`` items may be part objects, see
``input_items``.

Extension: ``encoding_format`` also takes ``int8``, ``uint8``, ``binary`` and ``ubinary``, answering
integer lists quantized as Cohere's embedding types (see ``gateway.protocol.quantization``): ``dim``
values for int8/uint8, ``dim / 8`` packed sign bytes for binary/ubinary (``dim`` must be divisible by 8).

The same route speaks Voyage's, Jina's and Mistral's embeddings APIs (their responses are this shape; the
response's ``id`` is what Mistral's SDK validates): ``EmbeddingRequest`` holds their fields too and
``gateway.protocol.openai_dialects`` merges them into one set of options. JSON null is "absent" in every
optional field (``gateway.protocol.nulls``).
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

import msgspec
import numpy as np
import orjson

from gateway.errors import GatewayError, InvalidRequest
from gateway.inputs import InputItem
from gateway.protocol import jina, voyage
from gateway.protocol.ids import uuid4_hex
from gateway.protocol.image_parts import parse_part
from gateway.protocol.nulls import NullAsDefault
from gateway.protocol.quantization import check_packable, quantize

# msgspec allows one array type and one object type per union, so nested token lists and lists of parts
# share the inner list type, and the part objects are plain dicts (``image_parts.parse_part``).
PartObject = dict[str, Any]
EmbeddingInput = str | list[str | int | list[int | PartObject] | PartObject]


EncodingFormat = Literal["float", "base64", "int8", "uint8", "binary", "ubinary"]


class EmbeddingRequest(NullAsDefault, kw_only=True):
    """``POST /v1/embeddings`` body: OpenAI's fields, then those of the APIs that share the route."""

    input: EmbeddingInput
    model: str
    encoding_format: EncodingFormat | None = "float"  # Voyage and Mistral: null / "float" / "base64"
    dimensions: int | None = None
    user: str | None = None
    # Voyage (Mistral sends output_dimension and output_dtype too): gateway.protocol.voyage
    input_type: voyage.InputType | None = None
    truncation: bool | None = None
    output_dimension: int | None = None
    output_dtype: voyage.OutputDtype | None = None
    # Jina: gateway.protocol.jina
    task: jina.Task | None = None
    embedding_type: jina.EmbeddingType | None = None
    encoding_type: jina.EmbeddingType | None = None  # the older name of embedding_type
    normalized: bool | None = None
    truncate: bool | None = None
    late_chunking: bool | None = None
    # extension for sparse models: keep each vector's top-k terms (gateway.protocol.openai_sparse)
    max_active_dims: int | None = None
    # Mistral: accepted and ignored
    metadata: dict[str, Any] | None = None


class EmbeddingData(msgspec.Struct):
    """One row: a float list, base64 of little-endian float32, or an integer list (quantized formats)."""

    index: int
    embedding: list[float] | str
    object: str = "embedding"


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(msgspec.Struct):
    """``POST /v1/embeddings`` response (``id``: required by Mistral's SDK, ignored by the others)."""

    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
    object: str = "list"
    id: str = ""


class ModelCard(msgspec.Struct):
    """One model. ``modalities`` (an extension: ``["text"]`` or ``["text", "image"]``) is omitted while
    the model loads and its folder has not yet told; so are ``task`` (``embed`` / ``rerank``) and
    ``outputs`` (``dense``, ``sparse``, ``multi_vector``, ``classify``, ``rerank``), extensions too."""

    id: str
    created: int
    owned_by: str = "gateway"
    object: str = "model"
    modalities: list[str] | msgspec.UnsetType = msgspec.UNSET
    task: str | msgspec.UnsetType = msgspec.UNSET
    outputs: list[str] | msgspec.UnsetType = msgspec.UNSET


class ModelList(msgspec.Struct):
    """``GET /v1/models`` response."""

    data: list[ModelCard]
    object: str = "list"


def split_input(value: EmbeddingInput) -> tuple[list[str], list[list[int]]]:
    """Classify ``input`` as texts or token-id lists (exactly one of the two is non-empty).

    Raises:
        InvalidRequest: empty list, mixed item kinds, or an empty token list (param ``input``).
    """
    if isinstance(value, str):
        return [value], []
    if not value:
        raise InvalidRequest("'input' must not be an empty list", param="input")
    if all(isinstance(item, str) for item in value):
        return list(value), []
    if all(isinstance(item, int) for item in value):
        return [], [list(value)]
    if all(isinstance(item, list) for item in value):
        empty = next((i for i, ids in enumerate(value) if not ids), None)
        if empty is not None:
            raise InvalidRequest(f"'input[{empty}]' is an empty token list", param="input")
        return [], list(value)
    raise InvalidRequest(
        "'input' must be a string, a list of strings, a list of token ids or a list of token-id lists, "
        "not a mix of them",
        param="input",
    )


def input_items(value: EmbeddingInput) -> list[InputItem] | None:
    """``input`` holding part objects (the image extension) as inputs of parts; None for plain text or
    token-id input, which ``split_input`` classifies (the text path, unchanged).

    Each string is one text; each part object (``{"type": "image_url", "image_url": {"url"}}``, ``{"type":
    "text", "text"}``, Jina's ``{"text"}`` / ``{"image"}``) one input; a list of part objects one input of
    several parts (fused into one vector by models that fuse).

    Raises:
        InvalidRequest: token ids mixed with parts, an empty part list, or a malformed part (param ``input``).
    """
    if isinstance(value, str) or not any(_holds_parts(entry) for entry in value):
        return None
    items = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            items.append(InputItem.of_text(entry))
        elif isinstance(entry, dict):
            items.append(InputItem([parse_part(entry, f"input[{i}]")]))
        elif entry and all(isinstance(part, dict) for part in entry):
            items.append(InputItem([parse_part(part, f"input[{i}][{j}]") for j, part in enumerate(entry)]))
        else:
            raise InvalidRequest(f"'input[{i}]': token ids cannot be mixed with text and image parts; a list "
                                 "entry must hold part objects only", param="input")
    return items


def _holds_parts(entry: object) -> bool:
    return isinstance(entry, dict) or (isinstance(entry, list) and any(isinstance(x, dict) for x in entry))


def encode_rows(vectors: np.ndarray, encoding_format: str, param: str = "encoding_format", *,
                as_base64: bool = False) -> list:
    """``(n, dim)`` float32 -> per-row float lists, base64 of little-endian float32 bytes, or the integer
    lists of a quantized format (``int8``, ``uint8``, ``binary``, ``ubinary``).

    Args:
        encoding_format: ``float``, ``base64`` (float32 bytes) or a quantized format.
        as_base64: rows as base64 of their little-endian bytes in that format (Voyage's ``encoding_format:
            "base64"`` with an ``output_dtype``): ``dim`` bytes for int8/uint8, ``dim / 8`` for bit formats.

    Raises:
        InvalidRequest: a bit format with ``dim`` not divisible by 8 (naming ``param``).
    """
    if encoding_format == "base64":
        encoding_format, as_base64 = "float", True
    if encoding_format == "float":
        return base64_rows(np.ascontiguousarray(vectors, dtype="<f4")) if as_base64 else float_rows(vectors)
    try:
        check_packable(vectors.shape[1], encoding_format)
    except ValueError as exc:
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None
    codes = quantize(vectors, encoding_format)
    return base64_rows(codes) if as_base64 else codes.tolist()


def base64_rows(rows: np.ndarray) -> list[str]:
    """Each row of a little-endian (or one-byte) array as base64 of its bytes."""
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]


def float_rows(vectors: np.ndarray) -> list[msgspec.Raw]:
    """``(n, dim)`` float32 -> one JSON array per row, each value the shortest decimal that parses back to
    the same float32 (``0.012345679``, as OpenAI answers), spliced into the response as ``msgspec.Raw``.

    Twice as fast and 40% smaller than ``tolist()`` + msgspec, which prints float64's 17 digits
    (``0.012345678918063641``); see ``benchmarks/response_encoding.py``.
    """
    rows = np.asarray(vectors, dtype=np.float32)
    return [msgspec.Raw(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)) for row in rows]


def to_embedding_response(vectors: np.ndarray, encoding_format: str, model: str, tokens: int, *,
                          as_base64: bool = False, param: str = "encoding_format") -> bytes:
    """Encode an embeddings response as JSON bytes (rows keep input order; see ``encode_rows``)."""
    rows = encode_rows(vectors, encoding_format, param, as_base64=as_base64)
    return msgspec.json.encode(
        EmbeddingResponse(
            data=[EmbeddingData(i, row) for i, row in enumerate(rows)],
            model=model,
            usage=EmbeddingUsage(tokens, tokens),
            id=f"embd-{uuid4_hex()}",
        )
    )


def to_model_list(names: list[str], created: int | None = None,
                  modalities: dict[str, list[str] | None] | None = None,
                  outputs: dict[str, tuple[str, list[str]]] | None = None) -> ModelList:
    """Every served name and alias as an OpenAI model list (``modalities``: name -> what it embeds;
    ``outputs``: name -> (task, outputs) of a loaded model)."""
    created = created or int(time.time())
    known = modalities or {}
    tasks = outputs or {}
    return ModelList([ModelCard(id=name, created=created, modalities=known.get(name) or msgspec.UNSET,
                                task=tasks[name][0] if name in tasks else msgspec.UNSET,
                                outputs=tasks[name][1] if name in tasks else msgspec.UNSET)
                      for name in names])


def error_body(error: GatewayError) -> dict:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
