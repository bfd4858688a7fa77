"""Container test helper (.ci/container_test.sh): the image's embedding of one text against the checkout's.

Waits (bounded) for the container's ``/ready``, starts the checkout's own server (``python -m gateway serve``
from this environment, as the test suite does) on a free loopback port, embeds the same text on both through
``POST /v1/embeddings`` (float32 rows), and fails unless the vectors agree: cosine >= 0.9999 and every
component within 1e-5. It also fails unless both serve the same OpenAPI document and the container serves
the files its package carries (Swagger UI, the console). Only loopback is contacted. Exit status 0: all
agree; 1: something differs, or a server never became ready.

    python .ci/container_compare.py --container-url http://127.0.0.1:PORT [--timeout-s 300]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

TEXT = "A container serves the same vectors as the checkout it was built from."
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MIN_COSINE = 0.9999
MAX_ABS_DIFF = 1e-5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base_url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``GET /ready`` until 200; raise if ``timeout_s`` passes or ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server at {base_url} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)  # a poll interval, bounded by the deadline; readiness is the event awaited
    raise RuntimeError(f"{base_url}/ready did not answer 200 within {timeout_s:.0f} s")


def embed(base_url: str) -> list[float]:
    body = json.dumps({"model": MODEL, "input": TEXT, "encoding_format": "float"}).encode()
    request = urllib.request.Request(f"{base_url}/v1/embeddings", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["data"][0]["embedding"]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def compare(got: list[float], want: list[float]) -> tuple[float, float]:
    """(cosine, largest absolute difference) of two vectors of the same length."""
    if len(got) != len(want):
        raise AssertionError(f"dimensions differ: container {len(got)}, checkout {len(want)}")
    dot = sum(a * b for a, b in zip(got, want, strict=True))
    norms = math.sqrt(sum(a * a for a in got)) * math.sqrt(sum(b * b for b in want))
    return dot / norms, max(abs(a - b) for a, b in zip(got, want, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container-url", required=True)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args()

    start = time.monotonic()
    wait_ready(args.container_url, args.timeout_s)
    print(f"container ready after {time.monotonic() - start:.1f} s (from this helper's start)")
    got = embed(args.container_url)

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1",
                                   "--port", str(port)], cwd=repo, env=env, stdout=log, stderr=log)
        try:
            wait_ready(f"http://127.0.0.1:{port}", args.timeout_s, server)
            want = embed(f"http://127.0.0.1:{port}")
            want_document = json.loads(get(f"http://127.0.0.1:{port}/schema/openapi.json"))
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            server.terminate()
            server.wait(timeout=60)

    if json.loads(get(f"{args.container_url}/schema/openapi.json")) != want_document:
        print("FAIL: the container's OpenAPI document differs from the checkout's", file=sys.stderr)
        return 1
    for page in ("/schema/swagger", "/ui"):  # package data (static files) made it into the image
        if b"<html" not in get(f"{args.container_url}{page}").lower():
            print(f"FAIL: {page} serves no HTML page", file=sys.stderr)
            return 1
    print("same OpenAPI document; /schema/swagger and /ui serve their pages")
    cosine, diff = compare(got, want)
    print(f"container vs checkout, {len(got)} dims: cosine {cosine:.7f}, max |diff| {diff:.2e}")
    if cosine < MIN_COSINE or diff > MAX_ABS_DIFF:
        print(f"FAIL: expected cosine >= {MIN_COSINE} and max |diff| <= {MAX_ABS_DIFF}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
