"""Image bytes -> an upright RGB ``PIL.Image``, under ``ImageLimits``, with Pillow.

The order is what makes it safe: the byte cap is checked before anything is decoded (before base64
decoding, even), only the PNG, JPEG, WebP and GIF plugins may open the bytes, the pixel cap and the
aspect ratio are read from the header before the pixels are decoded (a PNG header can claim 20000 x
20000 pixels in 60 bytes), and only the first frame of an animation is decoded. Pillow's own
decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) stays in force behind ours. EXIF orientation is
applied (``ImageOps.exif_transpose``), then transparency is composited onto white and the image converted
to RGB exactly as transformers' image processors do (``convert_to_rgb``), so a vector equals the one a
client gets by giving the processor its own PIL image.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.media.limits import FORMATS, ImageLimits, ImageRejected

# bits per channel sample of a Pillow mode (what Cohere reports as bit_depth)
BIT_DEPTHS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError,
                 Image.DecompressionBombError)


@dataclass(slots=True)
class DecodedImage:
    """A decoded image: ``image`` (RGB, upright), its ``format`` (``png``...) and source ``bit_depth``."""

    image: Image.Image
    format: str
    bit_depth: int


def bytes_from_data_uri(uri: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:image/<type>;base64,<data>`` URI.

    Raises:
        ImageRejected: not a base64 image data URI, not valid base64, or over ``max_bytes``.
    """
    header, comma, payload = uri.partition(",")
    fields = header[len("data:"):].split(";")
    if not comma or not fields[0].lower().startswith("image/") or "base64" not in fields[1:]:
        raise ImageRejected("a data URI must hold a base64 image: 'data:image/png;base64,...'")
    return bytes_from_base64(payload, max_bytes)


def bytes_from_base64(text: str, max_bytes: int) -> bytes:
    """Decode standard base64 (whitespace and missing padding tolerated), refusing oversize data first.

    Raises:
        ImageRejected: over ``max_bytes`` (judged from the text's length, before decoding) or not base64.
    """
    if len(text) * 3 // 4 > max_bytes + 2:
        raise ImageRejected(f"the image is about {len(text) * 3 // 4:,} bytes; at most {max_bytes:,} are "
                            "allowed")
    compact = "".join(text.split())
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("the image is not valid base64; send a data URI (data:image/png;base64,...), "
                            "raw base64 or an http(s) URL (file paths are never read)") from None
    if not data:
        raise ImageRejected("the image is empty")
    if len(data) > max_bytes:
        raise ImageRejected(f"the image is {len(data):,} bytes; at most {max_bytes:,} are allowed")
    return data


def check_dimensions(width: int, height: int, limits: ImageLimits, pixel_budget: int | None = None) -> None:
    """Raises ImageRejected when a header's size passes the pixel cap, the request's remaining
    ``pixel_budget`` (None: no request budget) or the aspect ratio."""
    if pixel_budget is not None and pixel_budget < limits.max_pixels and width * height > pixel_budget:
        raise ImageRejected(f"the request's images hold more than {limits.max_request_pixels:,} pixels "
                            "together; send fewer or smaller images per request")
    if width * height > limits.max_pixels:
        raise ImageRejected(f"the image is {width} x {height} pixels ({width * height:,}); at most "
                            f"{limits.max_pixels:,} pixels are allowed")
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        raise ImageRejected(f"the image is {width} x {height} pixels; its sides may differ by a factor of "
                            f"at most {limits.max_aspect_ratio:g}")


def decode_image(data: bytes, limits: ImageLimits, pixel_budget: int | None = None) -> DecodedImage:
    """Decode one image (see the module docstring for the order of the checks).

    Args:
        data: the encoded image.
        limits: byte, pixel and aspect-ratio caps.
        pixel_budget: pixels the request's other images left (``max_request_pixels`` minus theirs).

    Returns:
        The upright RGB image (first frame), its format name and bits per sample.

    Raises:
        ImageRejected: too large, not one of the four formats, truncated or otherwise undecodable.
    """
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"the image is {len(data):,} bytes; at most {limits.max_bytes:,} are allowed")
    try:
        opened = Image.open(io.BytesIO(data), formats=list(FORMATS))  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"the image has too many pixels: {exc}") from None
    except (UnidentifiedImageError, *DECODE_ERRORS):
        raise ImageRejected("the data is not a PNG, JPEG, WebP or GIF image") from None
    with opened:
        name = FORMATS[opened.format]
        check_dimensions(opened.width, opened.height, limits, pixel_budget)
        try:
            opened.load()  # the first frame's pixels
            bit_depth = BIT_DEPTHS.get(opened.mode, 8)
            upright = ImageOps.exif_transpose(opened)
        except DECODE_ERRORS as exc:
            raise ImageRejected(f"the {name.upper()} image could not be decoded ({exc})") from None
    return DecodedImage(to_rgb(upright), name, bit_depth)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, transparency composited onto white: transformers' ``convert_to_rgb``, which image processors
    apply themselves (so an RGBA image gives the same vector whether we or the processor convert it)."""
    if image.mode == "RGB":
        return image
    from transformers.image_transforms import convert_to_rgb

    return Image.fromarray(convert_to_rgb(image, return_numpy=True))
