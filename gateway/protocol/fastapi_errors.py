"""FastAPI's error bodies, which the seed projects' clients read (embed-rerank 1.5.1 and tkr-embed are
FastAPI apps): a request that fails validation is a 422 ``{"detail": [{"type", "loc", "msg", "input"}]}``,
an ``HTTPException`` is ``{"detail": "<message>"}`` with its status.

``ValidationFailed`` is the 422 these routes raise where FastAPI's pydantic validation would have refused
the body (a missing field, a wrong type, a list outside its length bounds); ``decode_json`` decodes a body
into a msgspec Struct and raises it with FastAPI's ``loc`` (``["body", "texts", 0]``).
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from gateway.errors import GatewayError, InvalidRequest

T = TypeVar("T")


class ValidationFailed(InvalidRequest):
    """The body does not match the route's schema (FastAPI's ``RequestValidationError``, 422).

    Attributes:
        loc: where, as FastAPI writes it: ``["body", "texts", 0]``.
    """

    status = 422

    def __init__(self, message: str, loc: list[str | int], *, kind: str = "value_error") -> None:
        field = next((part for part in loc[1:] if isinstance(part, str)), None)
        super().__init__(message, param=field)
        self.loc = loc
        self.kind = kind


def validation_detail(error: ValidationFailed) -> list[dict]:
    """FastAPI's 422 ``detail`` list for one error."""
    return [{"type": error.kind, "loc": error.loc, "msg": error.message, "input": None}]


def detail_body(error: GatewayError) -> dict:
    """``{"detail": [...]}`` for a 422, ``{"detail": "<message>"}`` for any other error (tkr-embed)."""
    if isinstance(error, ValidationFailed):
        return {"detail": validation_detail(error)}
    return {"detail": error.message}


def decode_json(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body into ``type_``.

    Raises:
        ValidationFailed: empty or malformed JSON, a missing required field or a field of the wrong type
            (422, ``loc`` naming the field).
    """
    if not body.strip():
        raise ValidationFailed("Field required: send a JSON object", ["body"], kind="missing")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise from_msgspec(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"JSON decode error: {exc}", ["body"], kind="json_invalid") from None


def convert(value: object, type_: type[T]) -> T:
    """``msgspec.convert`` of an already decoded value. Raises ValidationFailed (422) like ``decode_json``."""
    try:
        return msgspec.convert(value, type=type_)
    except msgspec.ValidationError as exc:
        raise from_msgspec(str(exc)) from None


def from_msgspec(message: str) -> ValidationFailed:
    """msgspec's "Expected `int`, got `str` - at `$.texts[0]`" -> a 422 at ``["body", "texts", 0]``."""
    found = re.fullmatch(r"(.*?)(?: - at `\$(.*)`)?", message, flags=re.DOTALL)
    problem, where = found[1], found[2] or ""
    loc: list[str | int] = ["body"]
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", where):
        loc.append(key if key else int(index))
    missing = re.fullmatch(r"Object missing required field `([^`]+)`", problem)
    if missing:
        return ValidationFailed(f"Field required: '{missing[1]}'", [*loc, missing[1]], kind="missing")
    return ValidationFailed(problem, loc)
