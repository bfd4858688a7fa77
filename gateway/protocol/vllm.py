"""What vLLM's pooling routes (``/classify``, ``/score``) share: the ``usage`` object, response ids and the
error shape.

Spec: vLLM's OpenAI-compatible server (``vllm/entrypoints/openai/protocol.py``: ``UsageInfo``,
``ErrorResponse``). vLLM's error body was flat, ``{"object": "error", "message", "type", "param", "code"}``
with ``code`` the HTTP status, and later releases nest the same fields under ``"error"`` (the OpenAI
shape): the body here holds both, so clients of either release read it.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus

import msgspec

from gateway.errors import GatewayError


class Usage(msgspec.Struct):
    """vLLM's ``UsageInfo``: prompt tokens are the model's tokens (special tokens included)."""

    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0
    prompt_tokens_details: None = None


def usage(tokens: int) -> Usage:
    """The ``usage`` of a request that read ``tokens`` model tokens and generated none."""
    return Usage(prompt_tokens=tokens, total_tokens=tokens)


def response_id(prefix: str) -> str:
    """``classify-<32 hex>``, ``score-<32 hex>``: vLLM's response ids."""
    return f"{prefix}-{uuid.uuid4().hex}"


def error_type(status: int) -> str:
    """vLLM's error ``type`` for a status: ``BadRequestError`` (400), ``NotFoundError`` (404),
    ``InternalServerError`` (500)..."""
    try:
        phrase = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "BadRequestError" if status < 500 else "InternalServerError"
    return phrase if phrase.endswith("Error") else f"{phrase}Error"


def error_body(error: GatewayError) -> dict:
    """vLLM's ``ErrorResponse``, flat and nested under ``error`` (see the module docstring)."""
    fields = {"message": error.message, "type": error_type(error.status), "param": error.param,
              "code": error.status}
    return {"object": "error", **fields, "error": fields}
