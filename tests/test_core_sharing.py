"""A CPU forward pass's intra-op threads (``gateway.engines.torch.core_sharing``): a runner lane's share of
the cores, and one thread for a pass too small to repay waking sleeping OpenMP workers.

The speed side (a lone query's pass on one thread against two) is measured by
``benchmarks/lane_capacity.py`` and ``gateway bench``, not asserted here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gateway.config import ModelConfig
from gateway.engines import load_engine
from gateway.engines.sources import embedded_model_dir
from gateway.engines.torch.core_sharing import idle_workers_sleep, tiny_pass_tokens


@pytest.mark.parametrize(("environ", "sleep"), [
    ({"GOMP_SPINCOUNT": "0"}, True),  # what ``gateway serve`` sets
    ({}, False),  # GNU OpenMP's default: spin 300,000 turns first
    ({"GOMP_SPINCOUNT": "10000"}, False),
    ({"OMP_WAIT_POLICY": "passive"}, True),
    ({"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "0"}, False),  # the policy wins, as in libgomp
])
def test_idle_workers_sleep_reads_the_openmp_environment(environ: dict[str, str], sleep: bool) -> None:
    assert idle_workers_sleep(environ) is sleep


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_lone_query_runs_on_one_thread_and_a_batch_on_its_share(monkeypatch, threads) -> None:
    monkeypatch.setenv("GOMP_SPINCOUNT", "0")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    torch.set_num_threads(4)  # as on a 4-core machine, whatever this one has
    config = ModelConfig(name="m", source=str(embedded_model_dir()), engine="torch", dtype="float32")
    engine = load_engine(config, str(embedded_model_dir()))
    assert engine._tiny_pass_tokens == 57  # MiniLM's hidden size 384: ceil(2^23 / 384^2)
    query, = engine.tokenize(["what is the capital of france"])
    batch = engine.tokenize(["a sentence of a few more words than the query has"] * 8)

    engine.share_cores(1, len(query))
    assert torch.get_num_threads() == 1
    alone = engine.embed([query])
    engine.share_cores(1, 8 * max(map(len, batch)))
    assert torch.get_num_threads() == 4
    engine.share_cores(2, 8 * max(map(len, batch)))  # two lanes busy: half the cores each
    assert torch.get_num_threads() == 2
    np.testing.assert_allclose(engine.embed([query]), alone, rtol=0, atol=1e-5)  # threads change no vector


def test_spinning_workers_and_gpus_keep_every_pass_on_its_share(monkeypatch) -> None:
    model = torch.nn.Linear(2, 2)
    model.config = type("Config", (), {"hidden_size": 384})()
    monkeypatch.setenv("GOMP_SPINCOUNT", "0")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert tiny_pass_tokens(model, "cpu") == 57
    assert tiny_pass_tokens(model, "cuda") == 0
    model.config.hidden_size = 1024  # a second thread already repays an 8-token pass
    assert tiny_pass_tokens(model, "cpu") == 8
    monkeypatch.setenv("GOMP_SPINCOUNT", "10000")
    assert tiny_pass_tokens(model, "cpu") == 0
    assert tiny_pass_tokens(torch.nn.Linear(2, 2), "cpu") == 0  # no hidden size: never
