"""A model folder whose outputs the server does not serve is refused at start-up, through the real
server: it is marked failed with the reason in the log and in ``/health`` (as any model that cannot load:
the others keep serving, ``/ready`` stays 503), and its name answers 503, never a dense vector. Refused here:
a Stanford ColBERT checkpoint (``HF_ColBERT``) and a 3-label classifier configured as an embedder. A BGE-M3
folder serves its dense vectors."""

from __future__ import annotations

import shutil

import httpx
import pytest

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.server import run_server
from compat_tests.test_production_lifecycle import get_or_none, wait_until
from tests.tiny_models import build_tiny_encoder_embedder
from tests.tiny_retrieval import build_tiny_bge_m3, build_tiny_classifier


def build_stanford_colbert(path):
    """A plain BERT folder whose config says ``HF_ColBERT``, as Stanford ColBERT checkpoints do."""
    dense = build_tiny_encoder_embedder(path.with_name(path.name + "-dense"), "bert")
    shutil.copytree(dense, path, ignore=shutil.ignore_patterns("modules.json", "1_Pooling",
                                                                "config_sentence_transformers.json"))
    config = (path / "config.json").read_text().replace('"BertModel"', '"HF_ColBERT"')
    (path / "config.json").write_text(config)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory):
    """A server with the default model, a Stanford ColBERT checkpoint, a 3-label classifier configured as an
    embedder, and a BGE-M3-layout folder."""
    workdir = tmp_path_factory.mktemp("refusal")
    stanford, labels = build_stanford_colbert(workdir / "stanford"), build_tiny_classifier(workdir / "labels")
    bge_m3 = build_tiny_bge_m3(workdir / "bge-m3")
    config = workdir / "mixed.toml"
    config.write_text(f'[[models]]\nname = "good"\nsource = "{DEFAULT_MODEL}"\n\n'
                      f'[[models]]\nname = "stanford"\nsource = "{stanford}"\n\n'
                      f'[[models]]\nname = "labels"\nsource = "{labels}"\ntask = "embed"\n\n'
                      f'[[models]]\nname = "m3"\nsource = "{bge_m3}"\n')
    with run_server(workdir, args=["--config", str(config)], wait_ready=False) as running:
        wait_until(lambda: settled(running.url), what="every model to settle")
        yield running


def settled(url: str) -> bool:
    """Whether the server listens and none of its models is still loading."""
    response = get_or_none(f"{url}/health")
    return response is not None and all(m["state"] != "loading" for m in response.json()["models"])


def test_refused_models_show_the_reason_in_health_and_the_log(mixed):
    assert httpx.get(f"{mixed.url}/ready").status_code == 503
    models = {m["name"]: m for m in httpx.get(f"{mixed.url}/health").json()["models"]}
    assert (models["good"]["state"], models["m3"]["state"]) == ("ready", "ready")
    stanford, labels = models["stanford"], models["labels"]
    assert stanford["state"] == labels["state"] == "failed"
    assert stanford["error"].startswith("ModelRefused: model 'stanford': detected a Stanford ColBERT "
                                        "checkpoint (HF_ColBERT)")
    assert "3 named labels (negative, neutral, positive)" in labels["error"]
    assert labels["error"].endswith("which is served with task = 'classify', not task = 'embed'")
    log = mixed.log()
    assert "refused model stanford: model 'stanford': detected a Stanford ColBERT checkpoint" in log
    assert "refused model labels: model 'labels': detected a sequence classifier" in log
    assert "Traceback" not in log  # a refusal is a reason, not a crash


def test_a_refused_model_answers_503_and_never_a_vector(mixed):
    for name in ("stanford", "labels"):
        response = httpx.post(f"{mixed.url}/v1/embeddings", json={"model": name, "input": "hello"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_not_ready"
    good = httpx.post(f"{mixed.url}/v1/embeddings", json={"model": "good", "input": "hello"})
    assert good.status_code == 200 and len(good.json()["data"][0]["embedding"]) == 384


def test_bge_m3_serves_dense_vectors(mixed):
    response = httpx.post(f"{mixed.url}/v1/embeddings", json={"model": "m3", "input": ["hello", "world"]})
    assert response.status_code == 200
    vectors = [item["embedding"] for item in response.json()["data"]]
    assert [len(v) for v in vectors] == [64, 64]
    assert all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)  # its pipeline ends in Normalize
