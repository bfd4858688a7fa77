"""Hugging Face text-embeddings-inference (TEI) wire format: ``/embed``, ``/tokenize``, ``/decode``, ``/info``

Spec: https://huggingface.github.io/text-embeddings-inference/ (openapi.json). TEI serves one model, so
``model`` is an optional extension of every body (default: the server's first model). ``/embed``
also takes token ids (the model's own, as ``/tokenize`` gives them, special tokens included). ``/tokenize``
offsets are UTF-8 byte offsets, as TEI's; special tokens carry their token string and null offsets.
Errors are ``{"error", "error_type"}`` (``gateway.protocol.tei_rerank.error_body``) with our statuses,
except tokenizer failures: 422 and ``error_type: "Tokenizer"``, as TEI.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from gateway.errors import GatewayError, InvalidRequest
from gateway.protocol import tei_rerank
from gateway.protocol.nulls import NullAsDefault


class TokenSpan(Protocol):
    """One token as ``/tokenize`` reads it (``gateway.engines.TokenSpan`` has these fields): its id, its
    text, whether the tokenizer added it, and its character offsets in the input (None when special)."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class ServedSpec(Protocol):
    """What ``/info`` reads of a served model (``gateway.engines.ModelSpec`` has these fields)."""

    task: str
    pooling: str
    dtype: str
    max_tokens: int
    modalities: tuple[str, ...]
    quantization: str | None
    labels: tuple[str, ...]
    outputs: tuple[str, ...]


class EmptyInput(InvalidRequest):
    """An empty input list or sentence list (TEI's ``Empty`` error: 400, ``error_type: "Empty"``)."""


class TokenizerError(InvalidRequest):
    """The tokenizer rejected the input (TEI's ``Tokenizer`` error, 422)."""

    status = 422


# TEI's ``Input``: a text, a list of texts, token ids, or a list mixing texts and token-id lists
# (msgspec allows one array type per union, so the nested forms share the one list type).
EmbedInputs = str | list[str | int | list[int]]


class EmbedRequest(NullAsDefault, kw_only=True):
    """``POST /embed`` (and ``POST /``) body."""

    inputs: EmbedInputs
    normalize: bool | None = True
    truncate: bool | None = None  # None: the model's truncation policy
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = "Right"
    prompt_name: str | None = None
    dimensions: int | None = None
    model: str | None = None


class TokenizeRequest(NullAsDefault, kw_only=True):
    """``POST /tokenize`` body."""

    inputs: str | list[str]
    add_special_tokens: bool | None = True
    prompt_name: str | None = None
    model: str | None = None


class DecodeRequest(NullAsDefault, kw_only=True):
    """``POST /decode`` body: one id list or a list of them (msgspec takes one list type per union)."""

    ids: list[int | list[int]]
    skip_special_tokens: bool | None = True
    model: str | None = None


class SimpleToken(msgspec.Struct):
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class Info(msgspec.Struct):
    """``GET /info``: TEI's fields that have a meaning here (no ``max_concurrent_requests``: no such cap)."""

    model_id: str
    model_sha: str | None
    model_dtype: str
    model_type: dict
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int | None
    max_client_batch_size: int
    auto_truncate: bool
    tokenization_workers: int
    version: str
    sha: str | None = None
    docker_label: str | None = None
    modalities: list[str] = msgspec.field(default_factory=lambda: ["text"])  # extension: what it embeds
    quantization: str | None = None  # extension: MLX weight quantization (q8, q4), None at full precision
    task: str = "embed"  # extension: embed / rerank / classify
    outputs: list[str] = msgspec.field(default_factory=lambda: ["dense"])  # extension: dense, sparse...


def as_list(inputs: str | list[str]) -> list[str]:
    return [inputs] if isinstance(inputs, str) else list(inputs)


def embed_inputs(inputs: EmbedInputs) -> list[str | list[int]]:
    """``/embed`` inputs as a list of texts and token-id lists (a flat id list is one input).

    Raises:
        InvalidRequest: bare token ids mixed with other inputs (param ``inputs``).
    """
    if isinstance(inputs, str):
        return [inputs]
    bare_ids = [isinstance(item, int) for item in inputs]
    if inputs and all(bare_ids):
        return [list(inputs)]
    if any(bare_ids):
        raise InvalidRequest("'inputs' mixes bare token ids with texts or token-id lists; send one id "
                             "list, or a list of texts and id lists", param="inputs")
    return list(inputs)


def id_lists(ids: list[int | list[int]]) -> list[list[int]]:
    """``ids`` as a list of id lists. Raises InvalidRequest on a mix of ids and lists, or nothing."""
    if ids and all(isinstance(i, int) for i in ids):
        return [list(ids)]
    if ids and all(isinstance(i, list) for i in ids):
        return list(ids)
    raise InvalidRequest("'ids' must be a non-empty list of token ids or a list of such lists", param="ids")


def to_simple_tokens(text: str, spans: list[TokenSpan]) -> list[SimpleToken]:
    """Engine spans (character offsets) -> TEI tokens with UTF-8 byte offsets into ``text``."""
    if text.isascii():
        return [SimpleToken(s.id, s.text, s.special, s.start, s.stop) for s in spans]
    byte_at = [0]
    for char in text:
        byte_at.append(byte_at[-1] + len(char.encode()))
    return [
        SimpleToken(s.id, s.text, s.special, None if s.start is None else byte_at[s.start],
                    None if s.stop is None else byte_at[s.stop])
        for s in spans
    ]


def to_info(name: str, revision: str | None, spec: ServedSpec, *, batch_tokens: int, max_inputs: int,
            auto_truncate: bool, version: str) -> Info:
    """The ``/info`` answer for one served model."""
    if spec.task == "embed":  # a SPLADE model's pooling is "splade", as TEI says
        model_type = {"embedding": {"pooling": spec.pooling}}
    else:  # TEI describes classifiers, and single-logit cross-encoders as rerankers, by their labels
        labels = spec.labels or ("LABEL_0",)
        heads = {"id2label": {str(i): name for i, name in enumerate(labels)},
                 "label2id": {name: i for i, name in enumerate(labels)}}
        model_type = {"classifier" if spec.task == "classify" else "reranker": heads}
    return Info(model_id=name, model_sha=revision, model_dtype=spec.dtype, model_type=model_type,
                max_input_length=spec.max_tokens, max_batch_tokens=batch_tokens, max_batch_requests=None,
                max_client_batch_size=max_inputs, auto_truncate=auto_truncate, tokenization_workers=1,
                version=version, modalities=list(spec.modalities), quantization=spec.quantization,
                task=spec.task, outputs=list(spec.outputs))


def error_body(error: GatewayError) -> dict:
    """TEI's ``{"error", "error_type"}``, with ``Tokenizer`` for tokenizer failures and ``Empty`` for an
    empty input list."""
    body = tei_rerank.error_body(error)
    if isinstance(error, TokenizerError):
        body["error_type"] = "Tokenizer"
    elif isinstance(error, EmptyInput):
        body["error_type"] = "Empty"
    return body
