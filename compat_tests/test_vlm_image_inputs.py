"""Vision-language embedders with image inputs, served for real and driven through the openai, cohere and
voyageai clients: image-only, fused (text and images in one input) and several images per input.

The tiny Ops-MM-embedding-v1 and Qwen3-VL-Embedding folders are served with no key but their source (and
float32, to compare with the fp32 reference to 1e-5). Vectors must equal the model cards' reference
pipelines (``tests/vlm_reference.py``) whichever wire format carried the image, with each API's
query / document input type as the model's instruction. The image issue's refusals hold for this model
kind too: a 400 in the route's shape, after which the server is ready and serving.
"""

from __future__ import annotations

import base64
import io

import cohere
import httpx
import numpy as np
import openai
import pytest
import voyageai
from PIL import Image

from compat_tests.server import run_server
from tests.tiny_vlm import build_tiny_qwen2_vl, build_tiny_qwen3_vl, sample_image
from tests.vlm_reference import Reference

OPS_MM, QWEN3 = "tiny-ops-mm", "tiny-qwen3-vl-embedding"
QWEN3_QUERY = "Retrieve images or text relevant to the user's query."
CAPTION = "Quarterly revenue by region"
PAGES = [sample_image(56, 84, seed=0), sample_image(120, 64, seed=1), sample_image(90, 90, seed=2)]


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def uri(image: Image.Image) -> str:
    return "data:image/png;base64," + b64(image)


def image_url(image: Image.Image) -> dict:
    return {"type": "image_url", "image_url": {"url": uri(image)}}


def unit(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm-image-models")
    return {OPS_MM: build_tiny_qwen2_vl(root / "ops-mm"), QWEN3: build_tiny_qwen3_vl(root / "qwen3-vl")}


@pytest.fixture(scope="module")
def references(folders):
    return {OPS_MM: Reference(str(folders[OPS_MM]), "ops-mm"),
            QWEN3: Reference(str(folders[QWEN3]), "qwen3-vl")}


@pytest.fixture(scope="module")
def vlm_server(tmp_path_factory, folders):
    workdir = tmp_path_factory.mktemp("vlm-image-server")
    (workdir / "gateway.toml").write_text(
        f'[[models]]\nname = "{OPS_MM}"\nsource = "{folders[OPS_MM]}"\ndtype = "float32"\n\n'
        f'[[models]]\nname = "{QWEN3}"\nsource = "{folders[QWEN3]}"\ndtype = "float32"\n'
    )
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, args=args) as running:
        yield running


@pytest.fixture(scope="module")
def client(vlm_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=vlm_server.openai_base, api_key="x", max_retries=0)


def rows(response) -> np.ndarray:
    return np.array([row.embedding for row in response.data], dtype=np.float32)


@pytest.mark.parametrize("model", [OPS_MM, QWEN3])
def test_screenshot_search_through_the_openai_sdk(client, references, model):
    """Page images as documents, a text query, ranked by cosine: as the reference ranks them."""
    pages = client.embeddings.create(model=model, input=[image_url(page) for page in PAGES])  # base64
    query = client.embeddings.create(model=model, input=CAPTION, encoding_format="float")
    expected = unit([references[model].embed(None, [page]) for page in PAGES])
    np.testing.assert_allclose(rows(pages), expected, atol=1e-5)
    np.testing.assert_allclose(rows(query)[0], unit(references[model].embed(CAPTION)), atol=1e-5)
    ranking = np.argsort(-(rows(pages) @ rows(query)[0]))
    assert ranking.tolist() == np.argsort(-(expected @ unit(references[model].embed(CAPTION)))).tolist()


def test_fused_inputs_and_several_images_per_input(client, references):
    fused = [[{"type": "text", "text": CAPTION}, image_url(PAGES[0])],  # text first on the wire:
             [image_url(PAGES[0]), image_url(PAGES[1]), {"type": "text", "text": CAPTION}]]  # images lead
    response = client.embeddings.create(model=OPS_MM, input=fused, encoding_format="float")
    expected = unit([references[OPS_MM].embed(CAPTION, [PAGES[0]]),
                     references[OPS_MM].embed(CAPTION, PAGES[:2])])
    np.testing.assert_allclose(rows(response), expected, atol=1e-5)
    alone = [rows(client.embeddings.create(model=OPS_MM, input=[entry], encoding_format="float"))[0]
             for entry in fused]
    np.testing.assert_allclose(rows(response), np.array(alone), atol=1e-5)


def test_the_same_image_gives_the_same_vector_through_every_format(vlm_server, client, references):
    page = PAGES[1]
    expected = unit(references[QWEN3].embed(None, [page]))
    got = {
        "openai data URI": rows(client.embeddings.create(model=QWEN3, input=[image_url(page)]))[0],
        "openai raw base64": rows(client.embeddings.create(model=QWEN3, input=[{"image": b64(page)}]))[0],
    }
    v2 = cohere.ClientV2(base_url=vlm_server.url, api_key="x", timeout=60)
    got["cohere v2 images"] = v2.embed(model=QWEN3, images=[uri(page)], input_type="image",
                                       embedding_types=["float"]).embeddings.float_[0]
    got["cohere v2 inputs"] = v2.embed(model=QWEN3, input_type="search_document", embedding_types=["float"],
                                       inputs=[{"content": [image_url(page)]}]).embeddings.float_[0]
    voyage = voyageai.Client(api_key="x", base_url=vlm_server.openai_base, max_retries=0)
    got["voyage PIL"] = voyage.multimodal_embed(inputs=[[page]], model=QWEN3).embeddings[0]
    for name, vector in got.items():
        np.testing.assert_allclose(np.asarray(vector, np.float32), expected, atol=1e-5, err_msg=name)


def test_input_types_are_the_instruction_for_image_inputs_too(vlm_server, references):
    reference = references[QWEN3]
    v2 = cohere.ClientV2(base_url=vlm_server.url, api_key="x", timeout=60)
    content = [{"type": "text", "text": CAPTION}, image_url(PAGES[2])]
    query = v2.embed(model=QWEN3, input_type="search_query", embedding_types=["float"],
                     inputs=[{"content": content}])
    expected = unit(reference.embed(CAPTION, [PAGES[2]], QWEN3_QUERY))
    np.testing.assert_allclose(query.embeddings.float_[0], expected, atol=1e-5)
    voyage = voyageai.Client(api_key="x", base_url=vlm_server.openai_base, max_retries=0)
    result = voyage.multimodal_embed(inputs=[[CAPTION, PAGES[2]], [PAGES[0]]], model=QWEN3,
                                     input_type="document")
    np.testing.assert_allclose(result.embeddings, unit([reference.embed(CAPTION, [PAGES[2]]),
                                                        reference.embed(None, [PAGES[0]])]), atol=1e-5)


def test_usage_counts_text_tokens_and_every_vision_patch(vlm_server, client, references):
    processor = references[OPS_MM].processor
    images = references[OPS_MM].images([PAGES[0]])
    ids = processor(text=[references[OPS_MM].prompt(CAPTION, images, None)], images=[images])["input_ids"][0]
    patches = int(processor.image_processor(images=images)["image_grid_thw"].prod())
    placeholders = list(ids).count(processor.image_token_id)
    assert placeholders == patches // 4
    response = client.embeddings.create(model=OPS_MM, input=[[{"type": "text", "text": CAPTION},
                                                              image_url(PAGES[0])]])
    assert response.usage.prompt_tokens == len(ids) - placeholders + patches
    voyage = voyageai.Client(api_key="x", base_url=vlm_server.openai_base, max_retries=0)
    result = voyage.multimodal_embed(inputs=[[CAPTION, PAGES[0]]], model=OPS_MM)
    assert result.text_tokens == len(ids) - placeholders and result.image_pixels == 56 * 84
    assert result.total_tokens == len(ids) - placeholders + patches
    cohere_meta = cohere.ClientV2(base_url=vlm_server.url, api_key="x").embed(
        model=OPS_MM, input_type="search_document", embedding_types=["float"],
        inputs=[{"content": [image_url(PAGES[0])]}]).meta.billed_units
    assert cohere_meta.images == 1 and cohere_meta.image_tokens == patches


def test_modalities_are_shown(vlm_server):
    cards = {card["id"]: card for card in httpx.get(f"{vlm_server.url}/v1/models").json()["data"]}
    assert cards[OPS_MM]["modalities"] == cards[QWEN3]["modalities"] == ["text", "image"]


REFUSALS = [  # path, body, words the message must hold, the error shape's key
    ("/v1/embeddings", {"model": OPS_MM, "input": [{"type": "image_url", "image_url": {
        "url": "http://127.0.0.1:9/page.png"}}]}, ["input[0]"], "error"),
    ("/v1/embeddings", {"model": OPS_MM, "input": [{"type": "image_url", "image_url": {
        "url": "file:///etc/passwd"}}]}, ["file: URLs are never read"], "error"),
    ("/v1/embeddings", {"model": OPS_MM, "input": [{"image": "/etc/passwd"}]}, ["not a PNG"], "error"),
    ("/v2/embed", {"model": QWEN3, "images": ["file:///etc/passwd"]}, ["images[0]", "file:"], "message"),
    ("/v1/multimodalembeddings", {"model": QWEN3, "inputs": [{"content": [
        {"type": "image_url", "image_url": "file:///etc/passwd"}]}]}, ["file:"], "detail"),
    ("/v1/embeddings", {"model": OPS_MM, "input": [{"image": b64(sample_image(2, 500))}]},
     ["2 x 500", "200"], "error"),  # the decoder refuses it before the processor would
    ("/v1/embeddings", {"model": QWEN3, "input": [[{"type": "text", "text": "see <|image_pad|>"},
                                                   image_url(PAGES[0])]]}, ["reserved for images"], "error"),
]


@pytest.mark.parametrize("path, body, words, key", REFUSALS, ids=[f"{p}-{i}" for i, (p, *_) in
                                                                   enumerate(REFUSALS)])
def test_refusals_are_400_and_the_server_keeps_serving(vlm_server, client, path, body, words, key):
    response = httpx.post(f"{vlm_server.url}{path}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    payload = response.json()
    message = payload["error"]["message"] if key == "error" else payload[key]
    assert all(word in message for word in words), message
    assert httpx.get(f"{vlm_server.url}/ready").status_code == 200
    assert len(client.embeddings.create(model=OPS_MM, input=[image_url(PAGES[0])]).data) == 1


def test_a_1x1_image_is_embedded(client, references):
    dot = Image.new("RGB", (1, 1), (200, 30, 90))
    response = client.embeddings.create(model=QWEN3, input=[{"image": b64(dot)}], encoding_format="float")
    np.testing.assert_allclose(rows(response)[0], unit(references[QWEN3].embed(None, [dot])), atol=1e-5)
