"""The life-cycle settings: ``keep_alive`` durations as Ollama reads them, ``model_memory_budget`` in
bytes or shares, and the per-model keys in the config file."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, ModelConfig, load_settings, parse_budget, parse_keep_alive


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m", 300.0), ("1h30m", 5400.0), ("300ms", 0.3), ("10", 10.0), (3.5, 3.5), (0, 0.0), ("0", 0.0),
    (-1, None), ("-1", None), ("-1m", None), ("forever", None), (None, None),
])
def test_keep_alive_reads_durations_seconds_and_negative_as_forever(value, seconds):
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 minutes", "m", "", True, [1]])
def test_keep_alive_refuses_what_is_not_a_duration(value):
    with pytest.raises(ValueError, match="keep_alive"):
        parse_keep_alive(value)


def test_the_budget_is_bytes_units_or_a_share():
    assert parse_budget(1000, total_memory=10, total_gpu_memory=None) == 1000
    assert parse_budget("8GiB", total_memory=10, total_gpu_memory=None) == 8 * 2**30
    assert parse_budget("500MB", total_memory=10, total_gpu_memory=None) == 500 * 10**6
    assert parse_budget("60%", total_memory=1000, total_gpu_memory=None) == 600
    assert parse_budget("50% gpu", total_memory=1000, total_gpu_memory=400) == 200
    assert parse_budget(None, total_memory=1, total_gpu_memory=None) is None
    for bad in ("lots", "0", "150%", -5, "50% gpu"):
        with pytest.raises(ValueError, match="model_memory_budget"):
            parse_budget(bad, total_memory=1000, total_gpu_memory=None)


def test_the_config_file_takes_the_per_model_keys_and_names_a_bad_one(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('model_memory_budget = "2GiB"\n[[models]]\nname = "m"\nload = "on_demand"\n'
                      'keep_alive = "10m"\npinned = true\n[[api_keys]]\nkey = "k"\nadmin = true\n')
    settings = load_settings(config=str(config))
    (model,) = settings.models
    assert (model.load, model.keep_alive, model.pinned) == ("on_demand", "10m", True)
    assert settings.api_keys[0].admin and settings.model_memory_budget == "2GiB"
    config.write_text('[[models]]\nname = "m"\nkeep_alive = "later"\n')
    with pytest.raises(ConfigError, match=r"models\[0\]\.keep_alive"):
        load_settings(config=str(config))
    assert ModelConfig(name="m").load == "startup"
