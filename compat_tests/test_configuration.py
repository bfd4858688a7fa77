"""Serving a model from a local folder, chosen through a .env file, under its configured name."""

from __future__ import annotations

import shutil

import numpy as np
import openai

from compat_tests.server import run_server
from compat_tests.test_openai_embeddings import cosines
from gateway.engines.sources import embedded_model_dir


def test_local_folder_model_from_dotenv(tmp_path, reference_model):
    folder = tmp_path / "my-minilm"
    shutil.copytree(embedded_model_dir(), folder)
    (tmp_path / ".env").write_text(f"GATEWAY_MODEL={folder}\nGATEWAY_ENGINE=torch\n")
    with run_server(tmp_path) as server:
        client = openai.OpenAI(base_url=server.openai_base, api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == [str(folder)]
        response = client.embeddings.create(model=str(folder), input=["a local model"])
        got = np.array([row.embedding for row in response.data])
        assert cosines(got, reference_model.encode(["a local model"]))[0] >= 0.9999
