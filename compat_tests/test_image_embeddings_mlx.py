"""SigLIP on the MLX engine, served for real (MLX on a Linux CPU: one small server, a few requests)."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest

from compat_tests.server import run_server
from compat_tests.test_image_embeddings import IMAGES, QUERY, b64, image_url, rows, uri
from tests.tiny_dual import build_tiny_siglip

pytest.importorskip("mlx.core")


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    return build_tiny_siglip(tmp_path_factory.mktemp("mlx-siglip") / "siglip")


@pytest.fixture(scope="module")
def mlx_server(tmp_path_factory, siglip):
    workdir = tmp_path_factory.mktemp("mlx-image-server")
    with run_server(workdir, args=["--model", str(siglip), "--engine", "mlx"]) as running:
        yield running


def test_mlx_siglip_serves_texts_and_images_like_torch(mlx_server, siglip):
    from sentence_transformers import SentenceTransformer

    client = openai.OpenAI(base_url=mlx_server.openai_base, api_key="x", max_retries=0)
    reference = SentenceTransformer(str(siglip), device="cpu", local_files_only=True)
    inputs = [QUERY, image_url(uri(IMAGES[0])), {"image": b64(IMAGES[1])}]
    response = client.embeddings.create(model=str(siglip), input=inputs)
    expected = np.concatenate([reference.encode([{"text": QUERY}]), reference.encode(IMAGES[:2])])
    np.testing.assert_allclose(rows(response), expected, atol=1e-4)
    model = httpx.get(f"{mlx_server.url}/health").json()["models"][0]
    assert model["engine"] == "mlx" and model["modalities"] == ["text", "image"]
