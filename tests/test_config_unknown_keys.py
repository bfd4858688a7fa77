"""Unknown keys of the TOML file stop start-up, naming the key and the file; unknown env vars do not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.config import ConfigError, load_settings

BAD_TABLES = {
    "top level": ('port = 8001\nmax_bodybytes = 5\n', "max_bodybytes"),
    "[[models]]": ('[[models]]\nname = "m"\nmax_token = 3\n', "models[0].max_token"),
    "[[api_keys]]": ('[[api_keys]]\nkey = "k"\nrate_limit = 3\n', "api_keys[0].rate_limit"),
    "[models.ray]": ('[[models]]\nname = "m"\n[models.ray]\nreplica = 2\n', "models[0].ray.replica"),
    "[ray_ingress]": ('[ray_ingress]\ncpu = 2\n', "ray_ingress.cpu"),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("GATEWAY_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("table", list(BAD_TABLES))
def test_an_unknown_toml_key_names_the_key_and_the_file(workdir, table):
    text, key = BAD_TABLES[table]
    (workdir / "bad.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config="bad.toml")
    message = str(info.value)
    assert "bad.toml" in message and key in message and "unknown key" in message


def test_unknown_environment_variables_do_not_stop_the_server(workdir, monkeypatch):
    monkeypatch.setenv("GATEWAY_NOT_A_SETTING", "1")
    (workdir / ".env").write_text("GATEWAY_ALSO_NOT_A_SETTING=2\n")
    (workdir / "good.toml").write_text("port = 8123\n")
    assert load_settings(config="good.toml").port == 8123


def test_the_cli_prints_a_clean_message_and_exits_non_zero(workdir):
    (workdir / "bad.toml").write_text('[[models]]\nname = "m"\nmax_token = 3\n')
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", "bad.toml"], cwd=workdir,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert "bad.toml" in done.stderr and "models[0].max_token: unknown key" in done.stderr
    assert "Traceback" not in done.stderr
