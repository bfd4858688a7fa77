"""Shared fixtures: one real server on the embedded default model for the whole session."""

from __future__ import annotations

import pytest

from compat_tests.server import RunningServer, run_server
from gateway.protocol.token_ids import seed_tiktoken_cache

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIAS = "all-MiniLM-L6-v2"


@pytest.fixture(scope="session", autouse=True)
def offline_tiktoken() -> None:
    """LangChain's OpenAIEmbeddings runs tiktoken in the test process: seed its cache offline."""
    assert seed_tiktoken_cache()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """The real server with no configuration at all (embedded default model, torch engine)."""
    with run_server(tmp_path_factory.mktemp("default-server")) as running:
        yield running


@pytest.fixture(scope="session")
def production_server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """The real server with API keys, three models and JSON logs (see ``compat_tests/production.py``)."""
    from compat_tests.production import write_config
    from tests.tiny_models import build_tiny_cross_encoder

    workdir = tmp_path_factory.mktemp("production-server")
    config = write_config(workdir, build_tiny_cross_encoder(workdir / "tiny-reranker"))
    with run_server(workdir, args=["--config", str(config)]) as running:
        yield running


@pytest.fixture(scope="session")
def max_batch_size() -> int:
    """Largest request the batch tests send (the MLX suite lowers it: MLX on Linux CPU is slow)."""
    return 2048


@pytest.fixture(scope="session")
def reference_model():
    """In-process sentence-transformers on the same weights, the reference for vectors."""
    from sentence_transformers import SentenceTransformer

    from gateway.engines.sources import embedded_model_dir

    return SentenceTransformer(str(embedded_model_dir()), device="cpu")


@pytest.fixture(scope="module")
def v1(server):
    """cohere.Client (v1 routes) pointed at the server."""
    import cohere

    return cohere.Client(base_url=server.url, api_key="x", timeout=60)


@pytest.fixture(scope="module")
def v2(server):
    """cohere.ClientV2 (v2 routes) pointed at the server."""
    import cohere

    return cohere.ClientV2(base_url=server.url, api_key="x", timeout=60)
