"""Re-run the HTTP compat tests against a server on the MLX engine (mlx[cpu] on Linux: correct but slow,
so batch sizes are reduced). Test modules here import the torch-engine test functions unchanged."""

from __future__ import annotations

import pytest

from compat_tests.server import RunningServer, run_server

try:
    import mlx.core  # noqa: F401

    MLX_MISSING = None
except ImportError as exc:
    MLX_MISSING = f"mlx is not installed (pip install '.[mlx]'): {exc}"


@pytest.fixture(scope="session", autouse=True)
def mlx_installed() -> None:
    """Skip this folder's tests, visibly, without mlx: before ``server`` (same scope, autouse first) starts
    an MLX server. Not a module-level skip, which breaks ``pytest compat_tests/mlx_engine``: pytest cannot
    skip from a conftest it loads at start-up."""
    if MLX_MISSING:
        pytest.skip(MLX_MISSING)


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
