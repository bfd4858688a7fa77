"""Image embeddings served for real: tiny CLIP and SigLIP folders (and the text-only default model) behind
one server, driven through the openai, cohere and voyageai clients and raw HTTP.

The folders are served from a TOML file naming only their source (their modalities are detected). Vectors
must equal sentence-transformers' ``encode`` on the same PIL images and ``{"text": ...}`` texts, whichever
wire format carried them. Every refusal is a 400 in the route's own shape, after which the server is still
ready and serving. Remote fetching is enabled for ``localhost`` / ``127.0.0.1`` only, so that a loopback
URL is refused by the address check after DNS (no request ever leaves the machine).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import cohere
import httpx
import numpy as np
import openai
import pytest
import voyageai
from PIL import Image

from compat_tests.server import run_server
from tests.tiny_dual import build_tiny_clip, build_tiny_siglip

CLIP, SIGLIP, MINILM = "tiny-clip", "tiny-siglip", "sentence-transformers/all-MiniLM-L6-v2"
MAX_IMAGE_BYTES = 300_000
QUERY = "a photo of a cat"


def picture(seed: int, size: tuple[int, int] = (50, 40)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def b64(image: Image.Image) -> str:
    return base64.b64encode(png(image)).decode()


def uri(image: Image.Image) -> str:
    return "data:image/png;base64," + b64(image)


def image_url(value: str) -> dict:
    return {"type": "image_url", "image_url": {"url": value}}


def png_claiming(side: int) -> str:
    """Base64 of a 100-byte PNG whose header claims ``side`` x ``side`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + \
        chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


IMAGES = [picture(seed) for seed in range(3)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-models")
    return {CLIP: build_tiny_clip(root / "clip"), SIGLIP: build_tiny_siglip(root / "siglip")}


@pytest.fixture(scope="module")
def references(folders):
    from sentence_transformers import SentenceTransformer

    return {name: SentenceTransformer(str(path), device="cpu", local_files_only=True)
            for name, path in folders.items()}


@pytest.fixture(scope="module")
def image_server(tmp_path_factory, folders):
    workdir = tmp_path_factory.mktemp("image-server")
    (workdir / "gateway.toml").write_text(
        f'max_image_bytes = {MAX_IMAGE_BYTES}\nimage_fetch_enabled = true\n'
        'image_fetch_allowed_domains = ["localhost", "127.0.0.1"]\n\n'
        # float32, so that vectors compare with the fp32 reference to 1e-5; nothing says "image"
        f'[[models]]\nname = "{CLIP}"\nsource = "{folders[CLIP]}"\ndtype = "float32"\n\n'
        f'[[models]]\nname = "{SIGLIP}"\nsource = "{folders[SIGLIP]}"\ndtype = "float32"\n\n'
        f'[[models]]\nname = "{MINILM}"\n'
    )
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, args=args) as running:
        yield running


@pytest.fixture(scope="module")
def client(image_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=image_server.openai_base, api_key="unused", max_retries=0)


def rows(response) -> np.ndarray:
    return np.array([row.embedding for row in response.data], dtype=np.float32)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


@pytest.mark.parametrize("model", [CLIP, SIGLIP])
def test_image_search_through_the_openai_sdk(client, references, model):
    """The README's example: image vectors and a text query vector, ranked by cosine."""
    images = client.embeddings.create(model=model, input=[image_url(uri(i)) for i in IMAGES])  # base64
    query = client.embeddings.create(model=model, input=QUERY, encoding_format="float")
    np.testing.assert_allclose(rows(images), references[model].encode(IMAGES), atol=1e-5)
    np.testing.assert_allclose(rows(query)[0], references[model].encode([{"text": QUERY}])[0], atol=1e-5)
    ranking = np.argsort(-(unit(rows(images)) @ unit(rows(query)[0])))
    reference = np.argsort(-(unit(references[model].encode(IMAGES)) @ unit(references[model].encode(QUERY))))
    assert ranking.tolist() == reference.tolist()
    patches = 17 if model == CLIP else 16  # (32 / 8)^2 patches, plus CLIP's class token
    assert images.usage.prompt_tokens == images.usage.total_tokens == patches * len(IMAGES)


def test_dimensions_and_extra_body(client, references):
    expected = unit(references[CLIP].encode(IMAGES[:1])[:, :8])
    shortened = client.embeddings.create(model=CLIP, input=[{"image": uri(IMAGES[0])}], dimensions=8)
    np.testing.assert_allclose(rows(shortened), expected, atol=1e-5)
    through_extra_body = client.embeddings.create(model=CLIP, input="ignored", dimensions=8,
                                                  extra_body={"input": [image_url(uri(IMAGES[0]))]})
    np.testing.assert_allclose(rows(through_extra_body), expected, atol=1e-5)


def test_the_same_image_gives_the_same_vector_through_every_format(image_server, client, references):
    image = IMAGES[1]
    expected = references[CLIP].encode([image])[0]
    got = {
        "openai data URI": rows(client.embeddings.create(model=CLIP, input=[image_url(uri(image))]))[0],
        "openai raw base64": rows(client.embeddings.create(model=CLIP, input=[{"image": b64(image)}]))[0],
    }
    v1 = cohere.Client(base_url=image_server.url, api_key="x", timeout=60)
    v2 = cohere.ClientV2(base_url=image_server.url, api_key="x", timeout=60)
    got["cohere v1 images"] = v1.embed(model=CLIP, images=[uri(image)], input_type="image").embeddings[0]
    by_images = v2.embed(model=CLIP, images=[uri(image)], input_type="image", embedding_types=["float"])
    got["cohere v2 images"] = by_images.embeddings.float_[0]
    by_inputs = v2.embed(model=CLIP, input_type="image", embedding_types=["float"],
                         inputs=[{"content": [{"type": "image_url", "image_url": {"url": uri(image)}}]}])
    got["cohere v2 inputs"] = by_inputs.embeddings.float_[0]
    voyage = voyageai.Client(api_key="x", base_url=image_server.openai_base, max_retries=0)
    got["voyage PIL"] = voyage.multimodal_embed(inputs=[[image]], model=CLIP).embeddings[0]
    dict_input = [{"content": [{"type": "image_base64", "image_base64": uri(image)}]}]
    got["voyage dict"] = voyage.multimodal_embed(inputs=dict_input, model=CLIP).embeddings[0]
    for name, vector in got.items():
        np.testing.assert_allclose(np.asarray(vector, np.float32), expected, atol=1e-5, err_msg=name)
    assert by_images.images[0].width == 50 and by_images.images[0].height == 40
    assert by_images.images[0].format == "png" and by_images.images[0].bit_depth == 8
    assert by_images.meta.billed_units.images == 1 and by_images.meta.billed_units.image_tokens == 17


def test_voyage_usage_object(image_server, references):
    voyage = voyageai.Client(api_key="x", base_url=image_server.openai_base, max_retries=0)
    result = voyage.multimodal_embed(inputs=[[QUERY], [IMAGES[0]], [IMAGES[2]]], model=SIGLIP,
                                     input_type="query")
    text_tokens = len(references[SIGLIP].tokenizer(QUERY)["input_ids"])
    assert result.text_tokens == text_tokens and result.image_pixels == 2 * 50 * 40
    assert result.video_pixels == 0 and result.total_tokens == text_tokens + 2 * 16
    np.testing.assert_allclose(np.array(result.embeddings[1:]), references[SIGLIP].encode(
        [IMAGES[0], IMAGES[2]]), atol=1e-5)


@pytest.mark.parametrize("model", [CLIP, SIGLIP])
def test_a_mixed_request_equals_its_inputs_alone(client, model):
    inputs = [QUERY, image_url(uri(IMAGES[0])), "slides about revenue", image_url(uri(IMAGES[2]))]
    together = rows(client.embeddings.create(model=model, input=inputs, encoding_format="float"))
    alone = np.concatenate([rows(client.embeddings.create(model=model, input=[entry],
                                                          encoding_format="float")) for entry in inputs])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_an_image_url_sent_as_text_is_embedded_as_text(image_server, client, references):
    text = "https://example.com/photos/cat.png"
    response = client.embeddings.create(model=CLIP, input=[text], encoding_format="float")
    np.testing.assert_allclose(rows(response)[0], references[CLIP].encode([{"text": text}])[0], atol=1e-5)
    assert response.usage.prompt_tokens == len(references[CLIP].tokenizer(text)["input_ids"])


def test_a_1x1_image_is_embedded(client, references):
    tiny = Image.new("RGB", (1, 1), (200, 30, 90))
    response = client.embeddings.create(model=SIGLIP, input=[{"image": b64(tiny)}], encoding_format="float")
    np.testing.assert_allclose(rows(response)[0], references[SIGLIP].encode([tiny])[0], atol=1e-5)


def test_modalities_are_shown(image_server):
    cards = {card["id"]: card for card in httpx.get(f"{image_server.url}/v1/models").json()["data"]}
    assert cards[CLIP]["modalities"] == cards[SIGLIP]["modalities"] == ["text", "image"]
    assert cards[MINILM]["modalities"] == ["text"]
    health = {m["name"]: m for m in httpx.get(f"{image_server.url}/health").json()["models"]}
    assert health[SIGLIP]["modalities"] == ["text", "image"]
    info = httpx.get(f"{image_server.url}/info", params={"model": CLIP}).json()
    assert info["modalities"] == ["text", "image"]


BIG = base64.b64encode(png(picture(7, (400, 300)))).decode()  # ~360 KB: over the server's 300,000 bytes
TRUNCATED = base64.b64encode(png(picture(8, (100, 100)))[:2000]).decode()
VOYAGE_FILE = {"type": "image_url", "image_url": "file:///etc/passwd"}
REFUSALS = [  # path, body, words the message must hold, the error shape's key
    ("/v1/embeddings", {"model": CLIP, "input": [image_url("http://127.0.0.1:9/cat.png")]},
     ["input[0]", "127.0.0.1", "loopback"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": [image_url("http://localhost:9/cat.png")]},
     ["loopback"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": [image_url("https://images.example.com/cat.png")]},
     ["allowlist"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": [image_url("file:///etc/passwd")]},
     ["file: URLs are never read"], "error"),
    ("/v2/embed", {"model": CLIP, "images": ["file:///etc/passwd"]}, ["images[0]", "file:"], "message"),
    ("/v1/multimodalembeddings", {"model": CLIP, "inputs": [{"content": [VOYAGE_FILE]}]}, ["file:"],
     "detail"),
    ("/v1/embeddings", {"model": CLIP, "input": [image_url("/etc/passwd")]},
     ["file paths are never read"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": [{"image": "/etc/passwd"}]}, ["not a PNG"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": [{"image": png_claiming(20000)}]}, ["too many pixels"],
     "error"),
    ("/v1/embeddings", {"model": SIGLIP, "input": [{"image": png_claiming(8000)}]}, ["8000 x 8000"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": [{"image": TRUNCATED}]}, ["could not be decoded"], "error"),
    ("/v1/embeddings", {"model": CLIP, "input": ["fine", {"image": BIG}]},
     ["input[1]", "at most 300,000"], "error"),
    ("/v1/embeddings", {"model": MINILM, "input": [image_url(uri(IMAGES[0]))]}, [MINILM, "text only"],
     "error"),
    ("/v2/embed", {"model": MINILM, "images": [uri(IMAGES[0])]}, [MINILM, "text only"], "message"),
    ("/v1/embeddings", {"model": CLIP, "input": [[{"text": "a cat"}, image_url(uri(IMAGES[0]))]]},
     ["does not fuse"], "error"),
    ("/v1/multimodalembeddings", {"model": SIGLIP, "inputs": [{"content": [
        {"type": "text", "text": "a cat"}, {"type": "image_base64", "image_base64": uri(IMAGES[0])}]}]},
     ["does not fuse"], "detail"),
    ("/v1/embeddings", {"model": CLIP, "input": [{"image_url": {}}]}, ["image_url.url"], "error"),
]


@pytest.mark.parametrize("path, body, words, key", REFUSALS, ids=[f"{p}-{i}" for i, (p, *_) in
                                                                   enumerate(REFUSALS)])
def test_refusals_are_400_and_the_server_keeps_serving(image_server, client, path, body, words, key):
    response = httpx.post(f"{image_server.url}{path}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    payload = response.json()
    message = payload["error"]["message"] if key == "error" else payload[key]
    assert all(word in message for word in words), message
    assert httpx.get(f"{image_server.url}/ready").status_code == 200
    assert len(client.embeddings.create(model=CLIP, input=[image_url(uri(IMAGES[0]))]).data) == 1
