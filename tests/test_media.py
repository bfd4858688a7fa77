"""Image decoding under limits and the remote-fetch policy (gateway.media), without a model.

The fetcher is tested against a server this test starts on 127.0.0.1, reached through an injected
resolver that stands in for DNS plus the address check; the address check itself is tested on resolved
addresses as plain values. Nothing here connects to any address but loopback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address

import numpy as np
import pytest
from PIL import Image

from gateway.inputs import ImagePart, InputItem
from gateway.media.addresses import check_addresses, refusal_reason, resolve_public_address
from gateway.media.decode import bytes_from_base64, bytes_from_data_uri, decode_image
from gateway.media.fetch import fetch_image_bytes, parse_image_url
from gateway.media.limits import FetchPolicy, ImageLimits, ImageRejected
from gateway.media.load import load_images

LIMITS = ImageLimits()


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int = 40, height: int = 30, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb's shape:
    its one pixel-data chunk holds a few compressed zero rows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(64)))
            + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_the_four_formats_decode_to_rgb(fmt):
    decoded = decode_image(encoded(noise(), fmt), LIMITS)
    assert decoded.image.mode == "RGB" and decoded.image.size == (40, 30)
    assert decoded.format == fmt.lower() and decoded.bit_depth == 8


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "PPM"])
def test_other_formats_are_refused(fmt):
    with pytest.raises(ImageRejected, match="not a PNG, JPEG, WebP or GIF"):
        decode_image(encoded(noise(), fmt), LIMITS)


@pytest.mark.parametrize("side, message", [
    (8000, "8000 x 8000 pixels"),  # over our cap (50 M pixels), under Pillow's own bomb guard
    (20000, "too many pixels"),  # 400 M pixels: Pillow's guard refuses it as it reads the header
])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(side, message):
    with pytest.raises(ImageRejected, match=message):
        decode_image(png_header(side, side), LIMITS)


def test_a_truncated_png_is_refused():
    data = encoded(noise(200, 200), "PNG")
    with pytest.raises(ImageRejected, match="could not be decoded"):
        decode_image(data[: len(data) // 2], LIMITS)


def test_a_1x1_image_decodes():
    assert decode_image(encoded(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"), LIMITS).image.getpixel((0, 0)) \
        == (9, 8, 7)


def test_byte_pixel_and_aspect_caps():
    data = encoded(noise(), "PNG")
    with pytest.raises(ImageRejected, match="bytes; at most 100 are allowed"):
        decode_image(data, ImageLimits(max_bytes=100))
    with pytest.raises(ImageRejected, match="at most 1,000 pixels"):
        decode_image(data, ImageLimits(max_pixels=1000))
    with pytest.raises(ImageRejected, match="factor of at most 2"):
        decode_image(encoded(noise(100, 10), "PNG"), ImageLimits(max_aspect_ratio=2))


def test_base64_is_judged_by_its_length_before_it_is_decoded():
    with pytest.raises(ImageRejected, match="about 7,500 bytes"):
        bytes_from_base64("A" * 10_000, max_bytes=1000)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encoded(noise(40, 30), "JPEG", exif=exif), LIMITS)
    assert decoded.image.size == (30, 40)


def test_transparency_is_composited_onto_white_as_transformers_does():
    from transformers.image_transforms import convert_to_rgb

    image = noise(mode="RGBA")
    decoded = decode_image(encoded(image, "PNG"), LIMITS)
    np.testing.assert_array_equal(np.asarray(decoded.image), convert_to_rgb(image, return_numpy=True))


def test_data_uris_and_base64():
    data = encoded(noise(), "PNG")
    text = base64.b64encode(data).decode()
    assert bytes_from_data_uri(f"data:image/png;base64,{text}", LIMITS.max_bytes) == data
    assert bytes_from_base64(text[:60] + "\n" + text[60:].rstrip("="), LIMITS.max_bytes) == data
    for bad in ["data:text/plain;base64,aGk=", "data:image/png,%89PNG", "data:image/png;base64"]:
        with pytest.raises(ImageRejected, match="data URI must hold a base64 image"):
            bytes_from_data_uri(bad, LIMITS.max_bytes)
    for bad in ["/etc/passwd", "not base64!"]:
        with pytest.raises(ImageRejected):
            decode_image(bytes_from_base64(bad, LIMITS.max_bytes), LIMITS)


def load(items: list[InputItem], limits: ImageLimits = LIMITS, policy: FetchPolicy = FetchPolicy(),
         **options) -> None:
    asyncio.run(load_images(items, limits, policy, **options))


def test_load_images_fills_the_parts_and_names_the_failing_input():
    data = encoded(noise(), "WEBP", lossless=True)
    items = [InputItem.of_text("a caption"),
             InputItem([ImagePart("data:image/webp;base64," + base64.b64encode(data).decode(), "data_uri")])]
    load(items)
    part = items[1].images[0]
    assert part.image.size == (40, 30) and part.nbytes == len(data) and part.format == "webp"
    bad = [InputItem.of_text("x"), InputItem([ImagePart("file:///etc/passwd", "url")])]
    with pytest.raises(ImageRejected, match="file: URLs are never read") as error:
        load(bad)
    assert error.value.index == 1


def test_urls_are_refused_while_fetching_is_off():
    with pytest.raises(ImageRejected, match="does not fetch image URLs"):
        load([InputItem([ImagePart("http://127.0.0.1:9/a.png", "url")])])


def test_a_request_s_images_share_one_pixel_budget():
    text = base64.b64encode(encoded(noise(40, 30), "PNG")).decode()
    items = [InputItem([ImagePart(text, "base64")]) for _ in range(3)]
    with pytest.raises(ImageRejected, match="more than 2,500 pixels together") as error:
        load(items, ImageLimits(max_request_pixels=2500))
    assert error.value.index == 2


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.10", "private"),
    ("172.16.5.4", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("100.64.0.1", "non-public"), ("240.0.0.1", "reserved"),
    ("fd00::1", "private"), ("8.8.8.8", None), ("2606:4700:4700::1111", None),
])
def test_address_checks_on_resolved_addresses(address, reason):
    assert refusal_reason(ip_address(address)) == reason


def test_a_name_is_refused_when_any_of_its_addresses_is_not_public():
    assert check_addresses("cdn.test", ["8.8.8.8", "1.1.1.1"]) == "8.8.8.8"
    with pytest.raises(ImageRejected, match="resolves to 10.0.0.7, a private address"):
        check_addresses("cdn.test", ["8.8.8.8", "10.0.0.7"])
    with pytest.raises(ImageRejected, match="loopback"):
        asyncio.run(resolve_public_address("localhost", 80))


def test_allowlist_matching():
    policy = FetchPolicy(True, ("images.example.com", "*.cdn.example.com"))
    assert policy.allows_host("IMAGES.example.com.") and policy.allows_host("a.b.cdn.example.com")
    assert not policy.allows_host("cdn.example.com") and not policy.allows_host("evilcdn.example.com")
    assert not policy.allows_host("example.com") and FetchPolicy(True, ("*",)).allows_host("anything.org")


@pytest.mark.parametrize("url, message", [
    ("file:///etc/passwd", "file: URLs are never read"), ("ftp://host/a.png", "only http"),
    ("gopher://host/", "only http"), ("http:///a.png", "only http"),
])
def test_only_http_urls_with_a_host(url, message):
    with pytest.raises(ImageRejected, match=message):
        parse_image_url(url)


PNG = encoded(noise(), "PNG")


class ImageServer(BaseHTTPRequestHandler):
    """Answers by path: an image, a redirect, a 404, a streamed endless body, a lying length, a stall."""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.hosts.append(self.headers["Host"])
        if self.path == "/image.png":
            self._answer(200, PNG, {"Content-Length": str(len(PNG))})
        elif self.path == "/redirect":
            self._answer(302, b"", {"Location": "http://127.0.0.1:1/secret", "Content-Length": "0"})
        elif self.path == "/endless":  # no Content-Length: the body ends with the connection
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):  # refused at the cap: the client hung up
                pass
        elif self.path == "/big":
            self._answer(200, b"", {"Content-Length": str(10**9)})
        elif self.path == "/slow":
            time.sleep(3)
            self._answer(200, PNG, {"Content-Length": str(len(PNG))})
        else:
            self._answer(404, b"", {"Content-Length": "0"})

    def _answer(self, status, body, headers):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:  # the client gave up first (the timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageServer)
    server.hosts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def to_loopback(host: str, port: int) -> str:
    """Stands in for DNS + the address check: every test name is this test's own server."""
    assert host == "images.test"
    return "127.0.0.1"


def fetch(server, path: str, **policy) -> bytes:
    options = {"enabled": True, "allowed_domains": ("images.test",), "timeout_s": 2.0, "max_bytes": 1_000_000}
    url = f"http://images.test:{server.server_address[1]}{path}"
    return asyncio.run(fetch_image_bytes(url, FetchPolicy(**(options | policy)), resolve=to_loopback))


def test_fetch_connects_to_the_checked_address_and_keeps_the_host(image_server):
    assert fetch(image_server, "/image.png") == PNG
    assert image_server.hosts[-1] == f"images.test:{image_server.server_address[1]}"


@pytest.mark.parametrize("path, message", [
    ("/redirect", "redirects are not followed"), ("/missing", "HTTP 404"),
    ("/endless", "more than 1,000,000 bytes"), ("/big", "1,000,000,000 bytes"),
    ("/slow", "longer than 2 s"),
])
def test_fetch_refusals(image_server, path, message):
    with pytest.raises(ImageRejected, match=message):
        fetch(image_server, path)


def test_fetch_refuses_hosts_off_the_allowlist_and_when_disabled(image_server):
    with pytest.raises(ImageRejected, match="not on this server's allowlist"):
        fetch(image_server, "/image.png", allowed_domains=("other.test",))
    with pytest.raises(ImageRejected, match="does not fetch image URLs"):
        fetch(image_server, "/image.png", enabled=False)


def test_settings_build_the_limits_and_the_policy():
    from gateway.config import Settings

    domains = "Images.Example.com, *.cdn.test"
    settings = Settings(image_fetch_enabled=True, image_fetch_allowed_domains=domains, max_image_bytes=1234,
                        image_fetch_timeout_s=3)
    policy = FetchPolicy.from_settings(settings)
    assert policy == FetchPolicy(True, ("images.example.com", "*.cdn.test"), 3.0, 1234)
    assert ImageLimits.from_settings(Settings()) == ImageLimits()
    assert not FetchPolicy.from_settings(Settings()).enabled
