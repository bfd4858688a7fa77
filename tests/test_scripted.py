"""Traced TorchScript forward passes (``gateway.engines.torch.scripted``) give the eager model's vectors,
and a trace that does not hold for other inputs, or cannot be made, leaves the eager model in place."""

from __future__ import annotations

import logging
import random
import threading

import numpy as np
import pytest
import torch

from gateway.config import ModelConfig, Settings
from gateway.engines import Tokens
from gateway.engines.sources import embedded_model_dir
from gateway.engines.torch.engine import TorchEngine
from gateway.engines.torch.load import load_torch_engine
from gateway.engines.torch.packing import PackedBert
from gateway.engines.torch.scripted import padded_probe, scriptable, trace_states
from tests.tiny_models import build_tiny_cross_encoder, build_tiny_encoder_embedder, build_tiny_qwen3_embedder
from tests.tiny_retrieval import build_tiny_classifier

TEXTS = [
    "how do I reset my router password",
    "ok",
    "Create a new dictionary with keys from iterable and values set to value. " * 12,
    "A queue that is safe to share between threads; put() blocks while it is full, get() while empty.",
    "x",
    "What is the capital of France?",
]


def batches(engine: TorchEngine, seed: int, count: int) -> list[list[Tokens]]:
    """``count`` random batches: lone texts, equal texts (padded path), mixed lengths (packed path)."""
    rng = random.Random(seed)
    tokens = engine.tokenize(TEXTS)
    out = [[t] for t in tokens] + [[tokens[0]] * 5, tokens]
    out += [[rng.choice(tokens) for _ in range(rng.randint(1, 12))] for _ in range(count)]
    return out


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def minilm_pair(request) -> tuple[TorchEngine, TorchEngine]:
    config = ModelConfig(name="minilm", dtype=request.param)
    path = str(embedded_model_dir())
    return TorchEngine(config, path, torchscript=True), TorchEngine(config, path, torchscript=False)


def test_the_default_model_runs_traced_and_gives_the_eager_vectors(minilm_pair) -> None:
    scripted, eager = minilm_pair
    assert scripted._scripted is not None and scripted._packed._states != scripted._packed._eager_states
    assert eager._scripted is None and eager._packed._states == eager._packed._eager_states
    seen = set()
    for batch in batches(scripted, seed=0, count=12):
        seen.add(PackedBert.worth_it(batch))
        got, want = scripted.embed(batch), eager.embed(batch)
        assert got.shape == (len(batch), 384) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert seen == {True, False}  # both the padded and the packed path were compared


def widen_weights(*engines: TorchEngine, seed: int = 7) -> None:
    """The same wide random matrices (std 0.15) in every engine: at the default init different inputs
    give near-identical vectors, and a parity check could not fail."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for params in zip(*(engine.model.parameters() for engine in engines), strict=True):
            if params[0].dim() > 1:
                params[0].normal_(0, 0.15)
                for other in params[1:]:
                    other.copy_(params[0])


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_a_tiny_bert_with_wide_weights_runs_traced_exactly(tmp_path, pooling: str) -> None:
    path = build_tiny_encoder_embedder(tmp_path / pooling, "bert", pooling=pooling, seed=3)
    config = ModelConfig(name="tiny", dtype="float32")
    scripted, eager = TorchEngine(config, str(path)), TorchEngine(config, str(path), torchscript=False)
    widen_weights(scripted, eager)
    assert scripted._scripted is not None and scripted._packed._states != scripted._packed._eager_states
    vectors = []
    for batch in batches(scripted, seed=1, count=20):
        got = scripted.embed(batch)
        np.testing.assert_allclose(got, eager.embed(batch), rtol=1e-5, atol=1e-5)
        vectors.append(got)
    lone = np.stack([v[0] for v in vectors[:len(TEXTS)]])
    assert np.corrcoef(lone).min() < 0.9  # the check compared distinct vectors, not one repeated


FAMILIES = ["xlm-roberta", "roberta", "mpnet", "distilbert", "electra", "modernbert"]


@pytest.mark.parametrize("family", FAMILIES)
def test_other_allow_listed_encoders_run_traced_exactly(tmp_path, family: str) -> None:
    path = build_tiny_encoder_embedder(tmp_path / family, family, seed=4)
    config = ModelConfig(name=family, dtype="float32")
    scripted, eager = TorchEngine(config, str(path)), TorchEngine(config, str(path), torchscript=False)
    assert scripted._scripted is not None and eager._scripted is None
    widen_weights(scripted, eager)  # after tracing: the graph shares the eager weights
    long = scripted.tokenize(["word " * 200])  # past ModernBERT's and MPNet's windows
    assert len(long[0]) > 200
    vectors = []
    for batch in batches(scripted, seed=3, count=20) + [long + scripted.tokenize(TEXTS[:3])]:
        got = scripted.embed(batch)
        np.testing.assert_allclose(got, eager.embed(batch), rtol=1e-5, atol=1e-5)
        vectors.append(got)
    lone = np.stack([v[0] for v in vectors[:len(TEXTS)]])
    assert np.corrcoef(lone).min() < 0.9  # distinct vectors were compared


PAIRS = [("how do I reset my router", TEXTS[3]), ("ok", "x"), ("capital of France?", TEXTS[5]),
         ("a longer query about dictionaries and their keys", TEXTS[2]), ("x", TEXTS[0])]


@pytest.mark.parametrize(("task", "family"), [("rerank", "bert"), ("classify", "bert"),
                                              ("rerank", "xlm-roberta"), ("rerank", "modernbert")])
def test_cross_encoder_and_classifier_heads_run_traced_with_the_eager_logits(tmp_path, task: str,
                                                                             family: str) -> None:
    path = (build_tiny_cross_encoder(tmp_path / task, family, seed=2) if task == "rerank"
            else build_tiny_classifier(tmp_path / task, seed=2))
    config = ModelConfig(name="tiny", task=task, dtype="float32")
    scripted = load_torch_engine(config, str(path))
    eager = load_torch_engine(config, str(path), torchscript=False)
    assert scripted._scripted is not None and eager._scripted is None
    batch = scripted.tokenize_pairs(PAIRS)
    if family == "bert":
        assert any(t.type_ids and 1 in t.type_ids for t in batch)  # segment ids reach the traced graph
    for sub in (batch, batch[:1], batch[1:3]):
        if task == "rerank":
            got, want = scripted.score(sub), eager.score(sub)
            assert got.shape == (len(sub),) and got.dtype == np.float32
        else:
            got, want = scripted.forward(sub, "classify"), eager.forward(sub, "classify")
            assert got.shape == (len(sub), 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.ptp(scripted.score(batch) if task == "rerank" else got[:, 0]) > 1e-3  # distinct logits


def test_two_lanes_share_one_traced_graph(minilm_pair) -> None:
    scripted, eager = minilm_pair
    work = batches(scripted, seed=2, count=10)
    expected = [eager.embed(batch) for batch in work]
    failures: list[str] = []
    start = threading.Barrier(2)

    def lane(order: list[int]) -> None:
        scripted.share_cores(2)
        start.wait()
        for _ in range(3):
            for i in order:
                if not np.allclose(scripted.embed(work[i]), expected[i], rtol=1e-5, atol=1e-6):
                    failures.append(f"batch {i}")

    threads = [threading.Thread(target=lane, args=(order,))
               for order in (list(range(len(work))), list(reversed(range(len(work)))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


class ShapeBranching(torch.nn.Module):
    """A model whose forward branches in Python on the sequence length: a trace records one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 4)

    def forward(self, input_ids, attention_mask, return_dict=False):
        states = self.embed(input_ids)
        return (states * 2 if input_ids.shape[1] > 10 else states,)


class Untraceable(ShapeBranching):
    def forward(self, input_ids, attention_mask, return_dict=False):
        return ({"not": "a tensor"},)


def real(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return inputs["attention_mask"].bool()


def test_a_trace_that_does_not_hold_for_other_shapes_keeps_the_eager_model(caplog) -> None:
    example = padded_probe(50, 2, 7, seed=0, types=False)
    same_branch = [padded_probe(50, 3, 9, seed=1, types=False)]
    assert trace_states(ShapeBranching().eval(), example, same_branch, real) is not None
    other_branch = [*same_branch, padded_probe(50, 1, 19, seed=2, types=False)]
    with caplog.at_level(logging.WARNING, logger="gateway.engines.torch.scripted"):
        assert trace_states(ShapeBranching().eval(), example, other_branch, real) is None
    assert "disagrees with the eager model" in caplog.text


def test_a_model_that_cannot_be_traced_keeps_the_eager_model(caplog) -> None:
    example = padded_probe(50, 2, 7, seed=0, types=False)
    with caplog.at_level(logging.WARNING, logger="gateway.engines.torch.scripted"):
        assert trace_states(Untraceable().eval(), example, [], real) is None
    assert "TorchScript trace of Untraceable failed" in caplog.text


def test_only_allow_listed_encoders_on_cpu_are_traced(tmp_path, minilm_pair) -> None:
    scripted, _ = minilm_pair
    bert = scripted.model[0].auto_model
    assert scriptable(bert, "cpu") and not scriptable(bert, "cuda")
    # a decoder embedder (Qwen3) is not allow-listed: eager passes, same service
    path = build_tiny_qwen3_embedder(tmp_path / "qwen3")
    engine = TorchEngine(ModelConfig(name="qwen3", dtype="float32"), str(path))
    assert engine._scripted is None
    assert engine.embed(engine.tokenize(["a short text"])).shape == (1, 64)


def test_the_setting_turns_tracing_off(monkeypatch, tmp_path) -> None:
    assert Settings().torchscript is True
    monkeypatch.setenv("GATEWAY_TORCHSCRIPT", "false")
    assert Settings().torchscript is False
    path = build_tiny_encoder_embedder(tmp_path / "bert", "bert")
    config = ModelConfig(name="tiny", dtype="float32")
    assert load_torch_engine(config, str(path), torchscript=False)._scripted is None
    assert load_torch_engine(config, str(path))._scripted is not None
