"""The configuration documents stay complete: ``.env.example`` names every setting, and
``config/example.toml`` is a valid config serving an embedding model and a cross-encoder."""

from __future__ import annotations

from pathlib import Path

from gateway.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_documents_every_setting():
    documented = (ROOT / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"GATEWAY_{name.upper()}=" not in documented]
    assert not missing, f"add these to .env.example: {missing}"


def test_the_example_config_serves_an_embedder_and_a_cross_encoder():
    settings = load_settings(config=str(ROOT / "config" / "example.toml"))
    assert [m.task for m in settings.served_models()] == ["embed", "rerank"]
    assert {k.name for k in settings.api_keys} == {"admin", "search-service"}
