"""``gateway serve --ray`` end to end: it starts a local Ray cluster, serves the same HTTP API on --port,
API keys included (they reach the replicas through the cluster's environment, never the Serve config),
and on SIGTERM tears everything down (its cluster's processes included) and exits 0."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.bench.server import free_port, wait_until_ready

pytest.importorskip("ray.serve")


def descendants(root: int) -> set[int]:
    """Every process below ``root``, from /proc (Ray's GCS, raylet, agents and workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, ppid in parents.items() if ppid == parent} - found
        found |= children
        frontier.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_serve_ray_starts_a_local_cluster_serves_and_cleans_up_on_sigterm(tmp_path):
    port = free_port()
    key = f"sk-ray-{secrets.token_hex(12)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "RAY_ADDRESS"))}
    # a tokens-per-minute quota too: the ingress, which tokenizes, charges it (gateway.serving.rate_limits)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GATEWAY_RATE_LIMIT_TPM": "100000"})
    # a named key from the config file: it travels as the JSON form of GATEWAY_API_KEYS
    config = tmp_path / "gateway.toml"
    config.write_text(f'[[api_keys]]\nkey = "{key}"\nname = "ray-client"\n')
    log_path = tmp_path / "serve-ray.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--ray", "--port", str(port),
                                    "--config", str(config)],
                                   cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log_path, timeout_s=300)
        body = {"model": "all-MiniLM-L6-v2", "input": "hi"}
        assert httpx.post(f"{url}/v1/embeddings", json=body, timeout=60).status_code == 401
        response = httpx.post(f"{url}/v1/embeddings", json=body, timeout=60,
                              headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200 and len(response.json()["data"]) == 1
        used = response.json()["usage"]["prompt_tokens"]
        assert response.headers["x-ratelimit-remaining-tokens"] == str(100_000 - used)
        assert httpx.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
        health = httpx.get(f"{url}/health", timeout=10, headers={"Authorization": f"Bearer {key}"}).json()
        assert health["models"][0]["state"] == "ready" and health["models"][0]["engine"] == "torch"
        cluster = descendants(process.pid)
        assert len(cluster) >= 3  # GCS, raylet, workers...
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0, log_path.read_text(errors="replace")[-3000:]
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in cluster) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [pid for pid in cluster if alive(pid)], "processes of the local Ray cluster outlived it"
        assert key not in log_path.read_text(errors="replace")
        # nor in any file of the cluster's session (Ray's logs, the controller's and the replicas'); the
        # key is random, so other sessions in the same folder cannot match it
        sessions = Path(os.environ.get("RAY_TMPDIR", "/tmp/ray"))
        files = [path for path in sessions.glob("session_*/**/*") if path.is_file() and not path.is_symlink()]
        assert files and not [path for path in files if key.encode() in path.read_bytes()]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
