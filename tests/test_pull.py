"""Hub downloads against a loopback stand-in hub (``tests/hub_standin.py``) serving the real default
model's files: ``gateway pull`` with a progress bar and a resumed interrupted download, and an on-demand
model whose download fails, is marked failed with the reason and is retried by the next request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ModelConfig, Settings
from gateway.engines.sources import embedded_model_dir
from gateway.http.app import create_app
from tests.hub_standin import COMMIT, StandInHub
from tests.test_lifecycle import embed, serve

ROOT = Path(__file__).resolve().parents[1]
REPO = "standin/minilm"


def test_pull_downloads_with_a_progress_bar_and_resumes_an_interrupted_file(tmp_path) -> None:
    with StandInHub(embedded_model_dir(), REPO, interrupt=("model.safetensors",)) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0",
               "HF_HUB_DISABLE_PROGRESS_BARS": "", "PYTHONPATH": str(ROOT)}
        env.pop("HF_HUB_DISABLE_PROGRESS_BARS")
        done = subprocess.run([sys.executable, "-m", "gateway", "pull", f"{REPO}@main"], env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().split(": ", 1)[1])
    assert folder.name == COMMIT
    weights = (folder / "model.safetensors").read_bytes()
    assert weights == (embedded_model_dir() / "model.safetensors").read_bytes()
    size = len(weights)
    # resumed from what it had written (whole chunks of what arrived), not from the start
    ((name, wanted),) = hub.ranges
    assert name == "model.safetensors" and 0 < int(wanted.removeprefix("bytes=").rstrip("-")) <= size // 2
    # the hub's own progress bar (its byte bars draw only on a terminal: stderr is a pipe here)
    assert f"Fetching {len(hub.files)} files: 100%" in done.stderr


def test_pull_reports_a_failure_per_model(tmp_path) -> None:
    with StandInHub(embedded_model_dir(), REPO) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0",
               "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "gateway", "pull", "standin/missing"], env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "standin/missing" in done.stderr


@pytest.fixture
def standin_hub(tmp_path, monkeypatch):
    """huggingface_hub pointed at a stand-in hub, online, with an empty cache (its constants are read at
    import time, so they are patched rather than the environment)."""
    from huggingface_hub import constants

    with StandInHub(embedded_model_dir(), REPO) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        yield hub


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_failed_download_marks_the_model_failed_and_the_next_request_retries(standin_hub) -> None:
    standin_hub.fail = True
    app = create_app(Settings(_env_file=None, models=[ModelConfig(name="hubbed", source=REPO,
                                                                  load="on_demand")]))
    served = app.state.registry.get("hubbed")
    async with serve(app) as client:
        refused = await embed(client, "hubbed")
        assert refused.status_code == 503 and "download failed" in refused.json()["error"]["message"]
        (health,) = (await client.get("/health")).json()["models"]
        assert health["state"] == "failed" and "download failed" in health["error"]
        standin_hub.fail = False
        answer = await embed(client, "hubbed")
        assert answer.status_code == 200 and served.state == "ready"
        (health,) = (await client.get("/health")).json()["models"]
        size = (embedded_model_dir() / "model.safetensors").stat().st_size
        assert health["download"]["done"] == health["download"]["total"] >= size
        assert health["bytes"] == served.weights_bytes > 0
