"""API key matching, Bearer parsing, trusted-host patterns and key settings (the server-level behaviour is
in compat_tests/test_production_auth.py)."""

from __future__ import annotations

import pytest

from gateway.config import ApiKey, ModelConfig, Settings
from gateway.errors import InvalidRequest
from gateway.http.auth import HostGuard, KeyRing, bearer_token, make_guards

MODELS = [ModelConfig(name="embedder", aliases=["e"]), ModelConfig(name="reranker", task="rerank")]


def test_the_ring_finds_the_presented_key_and_nothing_close_to_it():
    ring = KeyRing([ApiKey(key="alpha-key"), ApiKey(key="beta-key", name="beta", models=["e"])], MODELS)
    assert ring.match("alpha-key").label == "key-1" and ring.match("alpha-key").models is None
    beta = ring.match("beta-key")
    assert beta.label == "beta" and beta.models == {"embedder", "e"}  # an alias allows every name
    for wrong in ("alpha", "alpha-key ", "alpha-keyx", "ALPHA-KEY", ""):
        assert ring.match(wrong) is None


def test_a_key_naming_an_unserved_model_fails_at_start_up():
    with pytest.raises(ValueError, match="typo"):
        KeyRing([ApiKey(key="k", models=["typo"])], MODELS)


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("  Bearer   abc  ", "abc"), ("Basic abc", None),
    ("Bearer", None), ("", None), (None, None), ("abc", None),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


class FakeConnection:
    def __init__(self, host: str, path: str = "/v1/embeddings") -> None:
        self.headers = {"host": host}
        self.scope = {"path": path, "method": "POST"}


@pytest.mark.parametrize(("host", "allowed"), [
    ("api.example.com", True), ("API.example.com:8443", True), ("a.internal.example.com", True),
    ("internal.example.com", False), ("example.com.evil.org", False), ("[::1]:8000", True),
    ("evil.org", False), ("", False), ("[::1", False),
])
def test_host_patterns(host, allowed):
    guard = HostGuard(["api.example.com", "*.internal.example.com", "::1"])
    if allowed:
        guard(FakeConnection(host), None)
    else:
        with pytest.raises(InvalidRequest):
            guard(FakeConnection(host), None)
    guard(FakeConnection(host, "/ready"), None)  # probes come by IP address


def test_env_keys_are_unrestricted_and_toml_tables_may_limit_them(monkeypatch, tmp_path):
    monkeypatch.setenv("GATEWAY_API_KEYS", " sk-first, sk-second ,")
    assert [k.key.get_secret_value() for k in Settings().api_keys] == ["sk-first", "sk-second"]
    assert all(k.models is None for k in Settings().api_keys)
    assert "sk-first" not in repr(Settings())  # secrets never print
    monkeypatch.delenv("GATEWAY_API_KEYS")
    config = tmp_path / "keys.toml"
    config.write_text('[[api_keys]]\nkey = "k"\nname = "team"\nmodels = ["e"]\n')
    settings = Settings(config=config)
    assert settings.api_keys[0].models == ["e"] and settings.api_keys[0].name == "team"


def test_no_keys_logs_that_the_server_is_open(caplog):
    make_guards(Settings(), MODELS)
    assert "every route is open" in caplog.text
