"""One input type for every modality: what protocol adapters parse wire inputs into, and what the serving
layer and the engines consume.

A request holds a list of ``InputItem``; each item yields exactly one vector and holds one or more parts,
``TextPart`` or ``ImagePart``. A plain string on the wire is always one ``TextPart``: an image is read only
from a field that the wire format defines as an image (Cohere ``images`` / ``image_url`` parts, Voyage
``image_url`` / ``image_base64``, the OpenAI route's ``image_url`` / ``image`` parts), never guessed from
what a string looks like. Within an image field, ``ImagePart.kind`` says whether the client sent a data
URI, raw base64 or a URL; ``gateway.media`` decodes it under the configured limits (and fetches a URL only
when remote fetching is enabled) and stores the decoded RGB image in ``ImagePart.image``.

This module imports nothing of the server: protocol modules, services and engines all depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Modality = Literal["text", "image"]
ImageKind = Literal["data_uri", "base64", "url"]
# what happens to a text longer than the model takes: split into chunks (rerank documents), cut from the end
# or the start, or refuse with a 4xx
Overflow = Literal["chunk", "truncate", "truncate_left", "reject"]


@dataclass(frozen=True, slots=True)
class TextPart:
    """A text part of an input."""

    text: str


@dataclass(slots=True, eq=False)
class ImagePart:
    """An image part of an input, as the client sent it, and once decoded, the image itself.

    Attributes:
        source: a data URI (``data:image/png;base64,...``), raw base64, or an ``http(s)`` URL.
        kind: which of the three the wire field holds (``data_uri``, ``base64``, ``url``).
        image: the decoded RGB ``PIL.Image.Image`` (EXIF orientation applied), set by ``gateway.media``;
            None until then. Engines only ever see decoded images.
        nbytes: size of the encoded image in bytes, once decoded (for usage and limits).
        format: the encoded format (``png``, ``jpeg``, ``webp``, ``gif``), once decoded.
        bit_depth: bits per sample of the encoded image (8 for most), once decoded.
    """

    source: str
    kind: ImageKind
    image: Any = None
    nbytes: int = 0
    format: str | None = None
    bit_depth: int = 8

    @property
    def pixels(self) -> int:
        """Width x height of the decoded image (0 before decoding)."""
        return self.image.width * self.image.height if self.image is not None else 0


Part = TextPart | ImagePart


@dataclass(slots=True, eq=False)
class InputItem:
    """One input: the parts that together make one embedding (a text, an image, or both fused).

    Attributes:
        parts: at least one part, in the order the client sent them.
    """

    parts: list[Part] = field(default_factory=list)

    @classmethod
    def of_text(cls, text: str) -> InputItem:
        """An input holding one text."""
        return cls([TextPart(text)])

    @property
    def modalities(self) -> frozenset[str]:
        """The modalities of the parts (``{"text"}``, ``{"image"}`` or both)."""
        return frozenset("image" if isinstance(part, ImagePart) else "text" for part in self.parts)

    @property
    def images(self) -> list[ImagePart]:
        """The image parts, in order."""
        return [part for part in self.parts if isinstance(part, ImagePart)]

    @property
    def text(self) -> str | None:
        """The text of a text-only input (its text parts joined by a space), None if it holds an image."""
        if any(isinstance(part, ImagePart) for part in self.parts):
            return None
        return " ".join(part.text for part in self.parts)

    @property
    def is_single_part(self) -> bool:
        """Whether the input is one part (one text or one image), which every multimodal model embeds;
        several parts need a model that fuses them (``ModelSpec.fuses``)."""
        return len(self.parts) == 1
