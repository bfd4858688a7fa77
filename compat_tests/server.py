"""Start the real server (``python -m gateway serve``) on a free loopback port, for compat tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.bench import server as bench_server

READY_TIMEOUT_S = 300


@dataclass
class RunningServer:
    """A server process and where to reach it."""

    url: str  # e.g. http://127.0.0.1:54321
    process: subprocess.Popen
    log_path: Path

    @property
    def openai_base(self) -> str:
        """``base_url`` for the openai SDK."""
        return f"{self.url}/v1"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(workdir: Path, *, env: dict[str, str] | None = None, args: list[str] = (),
               wait_ready: bool = True) -> Iterator[RunningServer]:
    """Run ``gateway serve`` in ``workdir`` until the block exits; waits for ``/ready`` by default.

    ``env`` adds to a clean offline environment (no GATEWAY_* variables leak in from the caller). The
    server runs float32 unquantized models unless ``env`` says otherwise: the compat suites compare its
    answers with in-process float32 references at tight tolerances (tests/test_precision.py measures
    the other precisions).
    """
    port = bench_server.free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environment.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GATEWAY_DTYPE": "float32",
                        "GATEWAY_QUANTIZE": "none", **(env or {})})
    log_path = workdir / f"server-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=workdir, env=environment, stdout=log_file, stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        if wait_ready:
            wait_until_ready(server)
        yield server
    finally:
        bench_server.stop_process(process)


def wait_until_ready(server: RunningServer, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll ``/ready`` until 200. Raises RuntimeError with the server log if it dies or times out."""
    bench_server.wait_until_ready(server.url, server.process, server.log_path, timeout_s)
