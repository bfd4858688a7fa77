"""Re-run the HTTP compat tests against a server on the MLX engine (mlx[cpu] on Linux: correct but slow,
so batch sizes are reduced). Test modules here import the torch-engine test functions unchanged."""

from __future__ import annotations

import pytest

from compat_tests.server import RunningServer, run_server

pytest.importorskip("mlx.core")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """The real server on the embedded default model, forced onto the MLX engine."""
    with run_server(tmp_path_factory.mktemp("mlx-server"), env={"GATEWAY_ENGINE": "mlx"}) as running:
        health = __import__("httpx").get(f"{running.url}/health").json()
        assert {m["engine"] for m in health["models"]} == {"mlx"}
        yield running


@pytest.fixture(scope="session")
def max_batch_size() -> int:
    return 256
