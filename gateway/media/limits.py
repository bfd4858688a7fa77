"""What an image may be (``ImageLimits``), where it may come from (``FetchPolicy``), and the refusal error.

Both are built from ``Settings`` (``from_settings``); see the README's image section for the defaults and
why they are what they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import Settings

# Pillow format name -> the name clients know; nothing else is ever decoded (no EPS, TIFF, BMP, ICO...)
FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}


class ImageRejected(ValueError):
    """An image the gateway will not read or decode.

    Attributes:
        index: position of the input holding the image, once known (set by ``load_images``).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Limits on one image and on the images of one request.

    Attributes:
        max_bytes: encoded size of one image (after base64 decoding, or as fetched), in bytes.
        max_pixels: width x height of one image, read from its header before the pixels are decoded.
        max_aspect_ratio: longest side / shortest side (resizing processors scale the short side up,
            so a 1 x 100000 strip would become a huge intermediate image).
        max_request_pixels: decoded pixels of all images of one request together (RGB: 3 bytes each).
    """

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_aspect_ratio: float = 200.0
    max_request_pixels: int = 200_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(settings.max_image_bytes, settings.max_image_pixels, settings.max_image_aspect_ratio,
                   settings.max_request_image_pixels)


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Whether and from where ``http(s)`` image URLs are fetched.

    Attributes:
        enabled: off by default: a URL is then refused.
        allowed_domains: host names that may be fetched; ``*.example.com`` also allows its subdomains,
            ``*`` any public host. Empty: nothing is fetched.
        timeout_s: deadline for the whole fetch (DNS, connect, every byte), in seconds.
        max_bytes: the streamed body cap, in bytes (``ImageLimits.max_bytes``).
    """

    enabled: bool = False
    allowed_domains: tuple[str, ...] = field(default_factory=tuple)
    timeout_s: float = 10.0
    max_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        domains = tuple(domain.strip().lower().rstrip(".") for domain in settings.image_fetch_allowed_domains)
        return cls(settings.image_fetch_enabled, domains, settings.image_fetch_timeout_s,
                   settings.max_image_bytes)

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` (a name or an IP literal) is on the allowlist."""
        host = host.lower().rstrip(".")
        for domain in self.allowed_domains:
            if domain == "*" or domain == host:
                return True
            if domain.startswith("*.") and host.endswith(domain[1:]):
                return True
        return False
