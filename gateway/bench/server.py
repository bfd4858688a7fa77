"""Start ``gateway serve`` on a free loopback port for the benchmark (or use the server at ``--url``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

READY_TIMEOUT_S = 600


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def started_server(model: str | None, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``python -m gateway serve`` until the block exits; yields its base URL once ``/ready``.

    Args:
        model: ``--model`` for the server (None: its configured models).
        env: extra environment variables (e.g. ``OMP_NUM_THREADS``, ``GATEWAY_BATCH_TOKENS``).

    Raises:
        RuntimeError: the server exited or was not ready in time (with its log).
    """
    port = free_port()
    args = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if model:
        args += ["--model", model]
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=log,
                                       stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, process, log_path)
            yield url
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the server (it drains in-flight requests), then SIGKILL it after ``grace_s`` seconds."""
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_until_ready(url: str, process: subprocess.Popen | None = None, log_path: Path | None = None,
                     timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll ``{url}/ready`` until 200.

    Raises:
        RuntimeError: the process exited, or the server was not ready within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path else ""
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server at {url} was not ready after {timeout_s:g} s")
