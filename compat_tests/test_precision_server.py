"""The server at bfloat16 (what ``auto`` picks on CPUs with AMX): precision shown in ``/health`` and
``/info``, answers deterministic (twice the same request, base64 and float alike) and batch invariant,
and close to the float32 vectors of an in-process sentence-transformers model."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.server import RunningServer, run_server
from gateway.bench.corpus import load_corpus
from gateway.engines.sources import embedded_model_dir


@pytest.fixture(scope="module")
def bf16_server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    with run_server(tmp_path_factory.mktemp("bf16-server"), env={"GATEWAY_DTYPE": "bfloat16"}) as running:
        yield running


def embed(server: RunningServer, texts: list[str], encoding: str = "float") -> np.ndarray:
    answer = httpx.post(f"{server.url}/v1/embeddings", timeout=120,
                        json={"model": DEFAULT_MODEL, "input": texts, "encoding_format": encoding})
    assert answer.status_code == 200, answer.text
    rows = [row["embedding"] for row in answer.json()["data"]]
    if encoding == "base64":
        return np.array([np.frombuffer(base64.b64decode(row), dtype="<f4") for row in rows])
    return np.array(rows, dtype=np.float32)


def test_health_and_info_show_the_precision_and_memory(bf16_server: RunningServer) -> None:
    health = httpx.get(f"{bf16_server.url}/health").json()
    [model] = health["models"]
    assert (model["dtype"], model["quantization"]) == ("bfloat16", None)
    memory = health["memory"]
    assert memory["rss_bytes"] > 100 * 2**20
    assert memory["anon_bytes"] + memory["file_bytes"] <= memory["rss_bytes"] <= memory["peak_rss_bytes"]
    info = httpx.get(f"{bf16_server.url}/info").json()
    assert info["model_dtype"] == "bfloat16" and info["quantization"] is None
    assert "(bfloat16)" in bf16_server.log()  # the startup log line names it


def test_bf16_answers_are_deterministic_batch_invariant_and_close_to_fp32(bf16_server: RunningServer) -> None:
    texts = load_corpus().mixed[:32]
    first = embed(bf16_server, texts)
    np.testing.assert_allclose(embed(bf16_server, texts), first, rtol=0, atol=1e-5)
    np.testing.assert_allclose(embed(bf16_server, texts, "base64"), first, rtol=0, atol=1e-5)
    solo = np.concatenate([embed(bf16_server, [text]) for text in texts[:8]])
    assert (solo * first[:8]).sum(axis=1).min() >= 0.9999
    reference = SentenceTransformer(str(embedded_model_dir()), device="cpu").encode(texts)
    assert (first * reference).sum(axis=1).min() >= 0.9995
