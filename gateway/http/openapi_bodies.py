"""OpenAPI request bodies for routes that read and decode their body themselves.

Routes whose body takes several wire shapes (``/rerank``: Cohere, Jina, Voyage or TEI) or must be decoded
under the endpoint's own error format read ``request.body()`` instead of declaring a ``data`` parameter, so
Litestar cannot see what they accept and the OpenAPI document (``/schema/openapi.json``) would show no
request body, nor Swagger a template. ``documented_body`` describes the accepted shapes in the document
only: parsing stays with the route. Handlers returning encoded bytes (``Response[bytes]``, for speed)
document their 200 body the same way.

The schemas come from msgspec (``msgspec.json.schema_components``, JSON Schema 2020-12, which OpenAPI 3.1
uses) and are written inline: Litestar rebuilds the document's ``components`` from its own registry, so a
``$ref`` to a component added here would dangle.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody, Schema

JSON = "application/json"
FORM = "multipart/form-data"


def documented(
    *bodies: Any,
    response: Any = None,
    media_type: str = JSON,
    description: str | None = None,
    response_description: str = "Success",
) -> type[Operation]:
    """An ``operation_class`` for a route handler that documents its request body and/or 200 response.

    Args:
        bodies: the accepted request bodies, each a type msgspec can describe (a ``Struct``,
            ``list[Struct]``, ...) or a ready JSON Schema ``dict`` (e.g. a multipart form); several become
            ``anyOf``. None given: the request body Litestar derived from the handler's ``data`` stays.
        response: the 200 response body (a type, a union of types, or a JSON Schema ``dict``), for handlers
            that return encoded bytes (Litestar would say ``string``); None: Litestar's stays.
        media_type: the request body's content type.
        description: shown above the request schema (say how several shapes are told apart).
        response_description: the 200 response's description.

    Returns:
        An ``Operation`` subclass that fills these in when the document is built.
    """
    body_schema = _one_of_any([_schema(body) for body in bodies]) if bodies else None
    response_schema = _schema(response) if response is not None else None

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            if body_schema is not None:
                self.request_body = RequestBody(
                    content={media_type: OpenAPIMediaType(schema=_RawSchema(body_schema))},
                    description=description,
                    required=True,
                )
            if response_schema is not None:
                self.responses = {**(self.responses or {}), "200": OpenAPIResponse(
                    description=response_description,
                    content={JSON: OpenAPIMediaType(schema=_RawSchema(response_schema))},
                )}

    return Documented


def _schema(shape: Any) -> dict:
    """A dict as given; a union as ``anyOf`` of its members (msgspec describes only tagged unions of
    Structs); any other type by msgspec."""
    if isinstance(shape, dict):
        return shape
    if get_origin(shape) in (Union, UnionType):
        return _one_of_any([_schema(member) for member in get_args(shape)])
    return inline_schema(shape)


def _one_of_any(schemas: list[dict]) -> dict:
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def inline_schema(type_: Any) -> dict:
    """The JSON Schema of ``type_`` with every ``$ref`` replaced by its definition (no recursion expected:
    a self-referencing type keeps ``{}`` at the second visit)."""
    (root,), components = msgspec.json.schema_components([type_], ref_template="#/$defs/{name}")
    return _inline(root, components, ())


def _inline(node: Any, components: dict, seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, components, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:
            return {}
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inline(components[name], components, (*seen, name)), **_inline(rest, components, seen)}
    return {key: _inline(value, components, seen) for key, value in node.items()}


class _RawSchema(Schema):
    """``Schema`` whose serialized form is exactly the dict it wraps."""

    def __init__(self, raw: dict) -> None:
        super().__init__()
        self._raw = raw

    def to_schema(self) -> dict[str, Any]:
        return self._raw


def form_schema(*, file: str, required: list[str] | None = None, text: bool = False) -> dict:
    """The ``multipart/form-data`` schema of tkr-embed's upload routes: an image file part named ``file``,
    ``normalize`` and ``model`` fields, and a ``text`` field when ``text``."""
    properties: dict[str, Any] = {
        file: {"type": "string", "format": "binary", "description": "a JPEG, PNG, WebP or GIF image"},
        "normalize": {"type": "string", "enum": ["true", "false"], "default": "true"},
        "model": {"type": "string", "description": "served model name; default: the first image model"},
    }
    if text:
        properties["text"] = {"type": "string", "description": "a text to embed, alone or with the image"}
    return {"type": "object", "properties": properties, "required": required or []}
