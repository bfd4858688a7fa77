"""What image support costs, measured in-process (figures are per call, median of repeats).

1. The text path: the extra work a text-only request now does before ``embed_texts`` (the OpenAI route
   scans ``input`` for part objects; the Cohere route builds inputs and joins them back into texts).
2. Decoding (``gateway.media.decode.decode_image``) of a photo-sized JPEG and a screenshot-sized PNG, and
   the refusal of a PNG header claiming 20000 x 20000 pixels.
3. The dual-encoder engine's image preparation on the tokenizer thread (``encode_items``: the image
   processor) for a tiny random CLIP built offline (``tests/tiny_dual.py``).

Run: ``python benchmarks/image_inputs.py``.
"""

from __future__ import annotations

import io
import statistics
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from gateway.inputs import ImagePart, InputItem
from gateway.media.decode import decode_image
from gateway.media.limits import ImageLimits, ImageRejected
from gateway.protocol import cohere_embed, openai


def median_ms(func, repeats: int = 50) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """A smooth gradient with noise: compresses like a photo, unlike pure noise."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    noise = np.random.default_rng(0).integers(0, 24, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def bomb_header() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + \
        chunk(b"IEND", b"")


def refuse(data: bytes) -> None:
    try:
        decode_image(data, ImageLimits())
    except ImageRejected:
        return
    raise AssertionError("the bomb was decoded")


def main() -> None:
    texts = [f"query number {i} about product photos" for i in range(2048)]
    print("text path (ms per request):")
    print(f"  openai.input_items, 1 text:     {median_ms(lambda: openai.input_items(texts[:1]), 2000):.4f}")
    print(f"  openai.input_items, 2048 texts: {median_ms(lambda: openai.input_items(texts), 200):.4f}")
    request = cohere_embed.EmbedRequest(texts=texts[:96])
    join = lambda: [item.text for item in cohere_embed.request_items(request)[0]]  # noqa: E731
    print(f"  cohere request_items + texts, 96 texts: {median_ms(join, 200):.4f}")

    jpeg, png = encoded(photo(4032, 3024), "JPEG"), encoded(photo(1920, 1080), "PNG")
    print("decoding (ms per image):")
    for name, data, repeats in (("JPEG 4032 x 3024", jpeg, 5), ("PNG 1920 x 1080", png, 10)):
        took = median_ms(lambda data=data: decode_image(data, ImageLimits()), repeats)
        print(f"  {name} ({len(data) / 1e6:.1f} MB): {took:.1f}")
    bomb = bomb_header()
    print(f"  PNG header claiming 20000 x 20000, refused: {median_ms(lambda: refuse(bomb), 200):.3f}")

    from gateway.config import ModelConfig
    from gateway.engines import load_engine
    from tests.tiny_dual import build_tiny_clip

    with tempfile.TemporaryDirectory() as root:
        path = str(build_tiny_clip(Path(root) / "clip"))
        engine = load_engine(ModelConfig(name="clip", source=path, engine="torch", dtype="float32"), path)
        pictures = [decode_image(encoded(photo(640, 480), "JPEG"), ImageLimits()).image for _ in range(16)]
        items = [InputItem([ImagePart("", "base64", image=p)]) for p in pictures]
        prepare = median_ms(lambda: engine.encode_items(items), 10)
        print(f"image processor (tiny CLIP, 32 x 32 input), 16 images of 640 x 480: {prepare:.1f} ms")


if __name__ == "__main__":
    main()
