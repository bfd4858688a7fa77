"""tkr-embed's own API on the real server, with MiniLM (text), a tiny CLIP (text or image) and a tiny
vision-language model (text and image fused), in that order: the requests its README and the issue show
(JSON bodies, ``curl -F file=@cat.jpg``), the same vectors as ``/v1/embeddings``, the default model per
modality, ``/similarity`` in both shapes, the ``/health`` and ``/info`` fields, and hostile uploads (each a
4xx in FastAPI's ``{"detail"}`` shape, after which the server still serves).
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import uuid

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from compat_tests.server import run_server
from compat_tests.test_image_embeddings import picture, png, png_claiming
from tests.tiny_dual import build_tiny_clip
from tests.tiny_vlm import build_tiny_qwen2_vl

MINILM, CLIP, VLM = "sentence-transformers/all-MiniLM-L6-v2", "tiny-clip", "tiny-vlm"
MAX_IMAGE_BYTES = 300_000
CAT = picture(7, (48, 40))


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def uri(data: bytes, kind: str = "jpeg") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def tkr_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tkr-models")
    clip, vlm = build_tiny_clip(root / "clip"), build_tiny_qwen2_vl(root / "vlm")
    workdir = tmp_path_factory.mktemp("tkr-server")
    (workdir / "gateway.toml").write_text(
        f"max_image_bytes = {MAX_IMAGE_BYTES}\n\n"
        f'[[models]]\nname = "{MINILM}"\n\n'
        f'[[models]]\nname = "{CLIP}"\nsource = "{clip}"\ndtype = "float32"\n\n'
        f'[[models]]\nname = "{VLM}"\nsource = "{vlm}"\ndtype = "float32"\n'
    )
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, args=args) as running:
        running.workdir = workdir
        yield running


@pytest.fixture(scope="module")
def http(tkr_server):
    with httpx.Client(base_url=tkr_server.url, timeout=120) as client:
        yield client


def v1(http, model: str, item) -> np.ndarray:
    response = http.post("/v1/embeddings", json={"model": model, "input": [item]})
    assert response.status_code == 200, response.text
    return np.array(response.json()["data"][0]["embedding"], dtype=np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def image_part(data: bytes, kind: str = "jpeg") -> dict:
    return {"type": "image_url", "image_url": {"url": uri(data, kind)}}


def test_embed_text_gives_the_first_text_models_vectors(http):
    texts = ["Hello world", "tkr-embed on Apple Silicon"]
    response = http.post("/embed/text", json={"texts": texts, "normalize": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shape"] == [2, 384] and body["model"] == MINILM and body["processing_time"] >= 0
    for row, text in zip(body["embeddings"], texts, strict=True):
        np.testing.assert_allclose(row, v1(http, MINILM, text), atol=1e-6)
    clip = http.post("/embed/text?model=tiny-clip", json={"texts": ["a cat"]}).json()  # query parameter
    np.testing.assert_allclose(clip["embeddings"][0], unit(v1(http, CLIP, "a cat")), atol=1e-6)


@pytest.mark.parametrize("body", [{"texts": []}, {"texts": ["x"] * 101}, {"normalize": True}, {"texts": "x"}])
def test_embed_text_limits_are_422(http, body):
    response = http.post("/embed/text", json=body)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", "texts"]


def test_embed_image_upload_gives_the_same_vector_as_a_data_uri(http):
    data = jpeg(CAT)
    response = http.post("/embed/image", files={"file": ("cat.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    reference = v1(http, CLIP, image_part(data))  # the first model that embeds images
    assert body["model"] == CLIP and body["shape"] == [1, 24]
    np.testing.assert_allclose(body["embeddings"][0], unit(reference), atol=1e-6)
    raw = http.post("/embed/image", data={"normalize": "false", "model": CLIP},
                    files={"file": ("cat.jpg", data, "image/jpeg")}).json()
    np.testing.assert_allclose(raw["embeddings"][0], reference, atol=1e-6)  # what /v1/embeddings returns


def test_an_uploads_exif_orientation_is_applied(http):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    CAT.save(buffer, "JPEG", quality=90, exif=exif)
    body = http.post("/embed/image", files={"file": ("cat.jpg", buffer.getvalue(), "image/jpeg")}).json()
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    upright, as_stored = ImageOps.exif_transpose(decoded), decoded.convert("RGB")
    assert upright.size == (40, 48)
    np.testing.assert_allclose(body["embeddings"][0], unit(v1(http, CLIP, image_part(png(upright), "png"))),
                               atol=1e-6)
    assert not np.allclose(body["embeddings"][0], unit(v1(http, CLIP, image_part(png(as_stored), "png"))),
                           atol=1e-3)


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_form_upload(tkr_server, tmp_path, http):
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(jpeg(CAT))
    result = subprocess.run(["curl", "-s", "-F", f"file=@{cat}", f"{tkr_server.url}/embed/image"],
                            capture_output=True, check=True, timeout=120)
    vector = np.array(httpx.Response(200, content=result.stdout).json()["embeddings"][0])
    np.testing.assert_allclose(vector, unit(v1(http, CLIP, image_part(cat.read_bytes()))), atol=1e-6)


def test_embed_multimodal_picks_a_model_per_input(http):
    data = jpeg(CAT)
    text_only = http.post("/embed/multimodal", params={"text": "a cat"}).json()  # query parameter, no body
    assert text_only["model"] == MINILM
    np.testing.assert_allclose(text_only["embeddings"][0], v1(http, MINILM, "a cat"), atol=1e-6)
    image_only = http.post("/embed/multimodal", files={"image": ("cat.jpg", data, "image/jpeg")}).json()
    assert image_only["model"] == CLIP
    np.testing.assert_allclose(image_only["embeddings"][0], unit(v1(http, CLIP, image_part(data))), atol=1e-6)
    fused = http.post("/embed/multimodal", data={"text": "a cat"},  # form field, and a file: fused
                      files={"image": ("cat.jpg", data, "image/jpeg")})
    assert fused.status_code == 200, fused.text
    assert fused.json()["model"] == VLM and fused.json()["shape"][0] == 1
    reference = v1(http, VLM, [image_part(data), {"type": "text", "text": "a cat"}])
    np.testing.assert_allclose(fused.json()["embeddings"][0], unit(reference), atol=1e-5)


def test_multimodal_both_with_a_clip_model_is_a_400_saying_why(http):
    response = http.post("/embed/multimodal", params={"text": "a cat", "model": CLIP},
                         files={"image": ("cat.png", png(CAT), "image/png")})
    assert response.status_code == 400 and "CLIP-style" in response.json()["detail"]
    nothing = http.post("/embed/multimodal")
    assert nothing.status_code == 400 and "text or image" in nothing.json()["detail"]


def test_similarity_tkr_embed_body(http):
    query = [[1.0, 0.0], [3.0, 4.0]]
    candidates = [[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]
    cosine = http.post("/similarity", json={"query_embeddings": query, "candidate_embeddings": candidates})
    assert cosine.status_code == 200, cosine.text
    body = cosine.json()
    assert body["shape"] == [2, 3] and body["metric"] == "cosine"
    expected = [[0, 2 ** -0.5, 0], [0.8, 7 / 5 / 2 ** 0.5, 0]]  # a zero vector's cosine is 0
    np.testing.assert_allclose(body["similarities"], expected, atol=1e-9)
    euclid = http.post("/similarity", json={"query_embeddings": query, "candidate_embeddings": candidates,
                                            "metric": "euclidean"}).json()
    distances = np.linalg.norm(np.array(query)[:, None] - np.array(candidates)[None], axis=2)
    np.testing.assert_allclose(euclid["similarities"], 1 / (1 + distances), atol=1e-9)  # tkr-embed's formula
    for bad in ({"query_embeddings": [[1.0]], "candidate_embeddings": [[1.0, 2.0]]},
                {"query_embeddings": [[1.0], [1.0, 2.0]], "candidate_embeddings": [[1.0]]},
                {"query_embeddings": [], "candidate_embeddings": [[1.0]]},
                {"query_embeddings": [[1.0]], "candidate_embeddings": [[1.0]], "metric": "dot"}):
        response = http.post("/similarity", json=bad)
        assert response.status_code == 422 and isinstance(response.json()["detail"], list), response.text


def test_similarity_tei_body_on_the_same_path(http):
    sentences = ["The cat sits on the mat", "Stock markets fell today"]
    body = {"inputs": {"source_sentence": "A cat is sitting", "sentences": sentences}}
    response = http.post("/similarity", json=body)
    assert response.status_code == 200, response.text
    source = v1(http, MINILM, "A cat is sitting")
    expected = [float(source @ v1(http, MINILM, s)) for s in sentences]
    np.testing.assert_allclose(response.json(), expected, atol=1e-5)
    empty = http.post("/similarity", json={"inputs": {"source_sentence": "x", "sentences": []}})
    assert empty.status_code == 400 and "error_type" in empty.json()  # TEI's error shape
    neither = http.post("/similarity", json={"texts": ["x"]})
    assert neither.status_code == 400 and "source_sentence" in neither.json()["detail"]


def test_health_and_info_keep_their_fields_and_add_tkr_embeds(http):
    health = http.get("/health").json()
    assert health["status"] == "ok" and len(health["models"]) == 3  # this server's fields
    assert health["model_loaded"] is True and health["framework"] == "PyTorch"
    assert health["device"] == "cpu" and health["memory_usage_gb"] > 0 and health["uptime_seconds"] > 0
    info = http.get("/info").json()
    assert info["model_id"] == MINILM and info["max_client_batch_size"] > 0  # TEI's fields
    assert info["embedding_dim"] == 384 and info["supported_modalities"] == ["text"]
    assert info["model_path"] == MINILM and info["framework"] == "PyTorch" and info["load_time"] > 0
    clip = http.get("/info", params={"model": CLIP}).json()
    assert clip["supported_modalities"] == ["text", "image"] and clip["embedding_dim"] == 24
    assert clip["model_path"] == CLIP  # a local folder's path is not shown


def truncated_png() -> bytes:
    data = png(picture(3, (64, 64)))
    return data[: len(data) // 2]


HOSTILE = [  # (files, data, status, words in the detail)
    ({"file": ("notes.txt", b"hello, not an image", "text/plain")}, {}, 400, "must be an image"),
    ({"file": ("x.bin", b"hello, not an image", "application/octet-stream")}, {}, 400, "not a PNG"),
    ({"file": ("half.png", truncated_png(), "image/png")}, {}, 400, "could not be decoded"),
    ({"file": ("huge.png", base64.b64decode(png_claiming(20000)), "image/png")}, {}, 400, "pixels"),
    ({"file": ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES), "image/png")}, {}, 400, "bytes"),
    ({"file": ("cat.png", jpeg(CAT), "image/png")}, {}, 400, "declared 'image/png'"),
    ({"file": ("empty.png", b"", "image/png")}, {}, 400, "empty"),
    ({"other": ("cat.jpg", jpeg(CAT), "image/jpeg")}, {}, 422, "Field required"),
    ({}, {"file": "not a file"}, 422, "UploadFile"),
    ({"file": ("cat.jpg", jpeg(CAT), "image/jpeg")}, {"normalize": "maybe"}, 422, "boolean"),
    ({"file": ("cat.jpg", jpeg(CAT), "image/jpeg")}, {"model": "nope"}, 404, "nope"),
    ({"file": ("cat.jpg", jpeg(CAT), "image/jpeg")}, {"model": MINILM}, 400, "text only"),
]


@pytest.mark.parametrize(("files", "data", "status", "words"), HOSTILE)
def test_hostile_uploads_get_a_clear_4xx(http, files, data, status, words):
    response = http.post("/embed/image", files=files or None, data=data or None)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert words in (detail if isinstance(detail, str) else detail[0]["msg"]), detail


def test_malformed_forms_and_bodies(http):
    two = [("file", ("a.jpg", jpeg(CAT), "image/jpeg")), ("file", ("b.jpg", jpeg(CAT), "image/jpeg"))]
    assert http.post("/embed/image", files=two).status_code == 400
    broken = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nabc"
    response = http.post("/embed/image", content=broken,
                         headers={"content-type": "multipart/form-data; boundary=XYZ"})
    assert response.status_code == 400 and "detail" in response.json()
    latin = b"--XYZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\xff\xfe\r\n--XYZ--\r\n"
    response = http.post("/embed/multimodal", content=latin,
                         headers={"content-type": "multipart/form-data; boundary=XYZ"})
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]
    many = [("normalize", (None, "true"))] * 40
    assert http.post("/embed/image", files=many).status_code == 400
    too_big = http.post("/embed/image", files={"file": ("x.png", bytes(9 * 1024 * 1024), "image/png")})
    assert too_big.status_code == 413 and "detail" in too_big.json()
    assert http.get("/ready").status_code == 200


def test_uploads_are_never_written_under_their_client_name(tkr_server, http):
    name = f"evil-{uuid.uuid4().hex}.jpg"
    response = http.post("/embed/image", files={"file": (f"../../{name}", jpeg(CAT), "image/jpeg")})
    assert response.status_code == 200
    root = tkr_server.workdir
    assert not list(root.parent.parent.rglob(name)) and not list(root.rglob(name))
