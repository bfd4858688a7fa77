"""JSON ``null`` in an optional request field means "absent": the field takes its default.

Clients send null for options they leave unset (LiteLLM's ``"encoding_format": null``, ``"dimensions":
null``; SDKs generated from OpenAPI schemas do the same), and every wire format we serve treats a missing
optional field as its default. Request Structs derive from ``NullAsDefault`` and annotate each optional
field as ``T | None = default``; after decoding, a None is replaced by the default, so handlers never see
it. Required fields are unaffected: null there is still a 400.
"""

from __future__ import annotations

from functools import cache

import msgspec


@cache
def _non_null_defaults(cls: type[msgspec.Struct]) -> tuple[tuple[str, object], ...]:
    """``(field, default)`` of ``cls``'s fields whose default is not None (factories included)."""
    fields, defaults = cls.__struct_fields__, cls.__struct_defaults__
    pairs = zip(fields[len(fields) - len(defaults):], defaults, strict=True)
    return tuple((name, default) for name, default in pairs if default is not None)


class NullAsDefault(msgspec.Struct):
    """Base of request bodies: a decoded None in a field with a non-None default becomes that default."""

    def __post_init__(self) -> None:
        for name, default in _non_null_defaults(type(self)):
            if getattr(self, name) is None:
                factory = getattr(default, "factory", None)  # msgspec.field(default_factory=...)
                setattr(self, name, factory() if factory is not None else default)
