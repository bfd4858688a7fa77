"""Settings precedence: flags > GATEWAY_* env > .env > TOML file > defaults."""

from __future__ import annotations

import pytest

from gateway.config import DEFAULT_MODEL, load_settings


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("GATEWAY_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_serve_the_embedded_model(workdir):
    settings = load_settings()
    assert (settings.host, settings.port, settings.engine) == ("127.0.0.1", 8000, "auto")
    [model] = settings.served_models()
    assert model.name == DEFAULT_MODEL and model.aliases == ["all-MiniLM-L6-v2"]


def test_precedence_flags_env_dotenv_toml(workdir, monkeypatch):
    toml = workdir / "server.toml"
    toml.write_text('port = 7001\nhost = "0.0.0.0"\nlog_format = "json"\nbatch_tokens = 999\n')
    (workdir / ".env").write_text("GATEWAY_PORT=7002\nGATEWAY_LOG_FORMAT=text\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(toml))
    monkeypatch.setenv("GATEWAY_PORT", "7003")
    settings = load_settings()
    assert settings.port == 7003  # env beats .env and TOML
    assert settings.log_format == "text"  # .env beats TOML
    assert (settings.host, settings.batch_tokens) == ("0.0.0.0", 999)  # TOML beats defaults
    assert load_settings(port=7004).port == 7004  # flags beat everything


def test_models_from_toml_and_model_override(workdir, monkeypatch):
    toml = workdir / "models.toml"
    toml.write_text(
        '[[models]]\nname = "a"\naliases = ["b"]\nsource = "/models/a"\ntruncation = "reject"\n\n'
        '[[models]]\nname = "ranker"\ntask = "rerank"\nengine = "torch"\n'
    )
    settings = load_settings(config=str(toml))
    assert [m.served_names for m in settings.served_models()] == [["a", "b"], ["ranker"]]
    assert settings.served_models()[1].task == "rerank"
    monkeypatch.setenv("GATEWAY_MODEL", "BAAI/bge-small-en-v1.5")
    assert [m.name for m in load_settings(config=str(toml)).served_models()] == ["BAAI/bge-small-en-v1.5"]


def test_comma_separated_lists_and_invalid_values(workdir, monkeypatch):
    monkeypatch.setenv("GATEWAY_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().allowed_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("GATEWAY_ENGINE", "tpu")
    with pytest.raises(ValueError):
        load_settings()


def test_missing_explicit_config_file_is_an_error(workdir):
    with pytest.raises(FileNotFoundError):
        load_settings(config="nope.toml")


def test_models_inherit_the_servers_dtype_and_quantize_unless_they_set_their_own(workdir):
    from gateway.config import ModelConfig, Settings

    own = ModelConfig(name="b", dtype="bfloat16", quantize="none")
    settings = Settings(dtype="float32", quantize="q8", models=[ModelConfig(name="a"), own])
    served = [(m.dtype, m.quantize) for m in settings.served_models()]
    assert served == [("float32", "q8"), ("bfloat16", "none")]
    assert [(m.dtype, m.quantize) for m in Settings().served_models()] == [("auto", "auto")]
