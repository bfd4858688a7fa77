"""The embedding cache with image inputs (a tiny CLIP folder, the real server): the key holds a digest of the
pixels the model sees, so the same picture in another file encoding is a hit, and changed pixels are not."""

from __future__ import annotations

import base64
import io
import re

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from compat_tests.server import run_server
from tests.tiny_dual import build_tiny_clip

CLIP = "tiny-clip"


def picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 50, 3), dtype=np.uint8))


def uri(image: Image.Image, compress_level: int = 6) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=compress_level)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def part(value: str) -> dict:
    return {"type": "image_url", "image_url": {"url": value}}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cache-images")
    folder = build_tiny_clip(workdir / "clip")
    (workdir / "gateway.toml").write_text(f'[[models]]\nname = "{CLIP}"\nsource = "{folder}"\n')
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, args=args) as running:
        yield openai.OpenAI(base_url=running.openai_base, api_key="unused", max_retries=0), running


def create(client: openai.OpenAI, inputs: list) -> tuple[int, bytes]:
    raw = client.embeddings.with_raw_response.create(model=CLIP, input=inputs, encoding_format="base64")
    return int(raw.headers["x-cache-hits"]), re.sub(rb'"id":"[^"]*"', b'"id":""', raw.content)


def test_images_are_cached_by_their_pixels(client):
    sdk, _ = client
    first = [part(uri(picture(1))), part(uri(picture(2)))]
    hits, body = create(sdk, first)
    assert hits == 0
    assert create(sdk, first) == (2, body)
    # the same pixels in a differently compressed file: the same arrays reach the model
    assert create(sdk, [part(uri(picture(1), compress_level=0))])[0] == 1
    # a changed patch in the middle (a corner could be cropped away by the model's preprocessing, and then
    # the model sees the same pixels: a hit would be right)
    changed = np.array(picture(1))
    changed[18:22, 23:27] ^= 0xFF
    assert create(sdk, [part(uri(Image.fromarray(changed)))])[0] == 0
    assert create(sdk, [{"type": "text", "text": "a photo"}, part(uri(picture(2)))])[0] == 1


def test_image_inputs_on_the_cohere_and_voyage_routes_say_their_hits(client):
    _, server = client
    image = uri(picture(7))
    cohere = {"model": CLIP, "inputs": [{"content": [{"type": "image_url", "image_url": {"url": image}}]}],
              "input_type": "image", "embedding_types": ["float"]}
    voyage = {"model": CLIP, "inputs": [{"content": [{"type": "image_base64", "image_base64": image}]}]}
    responses = [httpx.post(f"{server.url}{path}", json=body, timeout=60)
                 for path, body in [("/v2/embed", cohere), ("/v1/multimodalembeddings", voyage),
                                    ("/v2/embed", cohere)]]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert [r.headers["x-cache-hits"] for r in responses] == ["0", "1", "1"]
