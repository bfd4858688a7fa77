"""Input parts as the wire formats write them -> ``gateway.inputs`` parts. Shared by the OpenAI, Cohere and
Voyage adapters.

A plain string is always text. An image is read only from a field that is an image field; within one,
the value is a data URI (``data:image/...;base64,...``), an ``http(s)`` URL (fetched only where the
operator allows it) or, in fields that take raw base64 (Jina's ``image``, Voyage's ``image_base64``),
base64 image data. Anything else with a URL scheme (``file:``...) becomes a URL part that
``gateway.media`` refuses; nothing is ever opened as a file.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import InvalidRequest
from gateway.inputs import ImagePart, Part, TextPart

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
PART_SHAPES = ("{'type': 'text', 'text': ...}, {'type': 'image_url', 'image_url': {'url': ...}}, "
               "{'text': ...} or {'image': ...}")


def image_part(value: object, where: str, *, base64: bool) -> ImagePart:
    """An image part from an image field's string value.

    Args:
        value: what the client sent in the field.
        where: the field's location for messages (``input[2].image_url.url``).
        base64: whether the field may hold raw base64 (else a value without a scheme is refused).

    Raises:
        InvalidRequest: not a string, empty, or a bare value where only URLs are allowed.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{where}' must be a non-empty string: a data URI or an http(s) URL",
                             param=where.split("[", 1)[0])
    value = value.strip()
    if value[:5].lower() == "data:":
        return ImagePart(value, "data_uri")
    if _SCHEME.match(value):
        return ImagePart(value, "url")
    if base64:
        return ImagePart(value, "base64")
    raise InvalidRequest(f"'{where}' must be a data URI (data:image/png;base64,...) or an http(s) URL; file "
                         "paths are never read", param=where.split("[", 1)[0])


def url_of(value: object) -> object:
    """An ``image_url`` field's URL: ``{"url": ...}`` or the bare string (as Cohere once documented)."""
    return value.get("url") if isinstance(value, dict) else value


def parse_part(part: Any, where: str) -> Part:
    """One part in the OpenAI-extension / Jina / Cohere shapes (see ``PART_SHAPES``).

    Raises:
        InvalidRequest: an unknown shape, or a field of the wrong type.
    """
    param = where.split("[", 1)[0]
    if not isinstance(part, dict):
        raise InvalidRequest(f"'{where}' must be a part object: {PART_SHAPES}", param=param)
    kind = part.get("type")
    if kind == "text" or (kind is None and "text" in part):
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"'{where}.text' must be a string", param=param)
        return TextPart(text)
    if kind == "image_url" or (kind is None and "image_url" in part):
        return image_part(url_of(part.get("image_url")), f"{where}.image_url.url", base64=False)
    if kind == "image" or (kind is None and "image" in part):
        return image_part(part.get("image"), f"{where}.image", base64=True)
    raise InvalidRequest(f"'{where}' must be one of {PART_SHAPES}", param=param)
