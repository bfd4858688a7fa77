"""Padding-free BERT forward passes (``gateway.engines.torch.packing``) give the padded pipeline's vectors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gateway.config import ModelConfig
from gateway.engines import Tokens
from gateway.engines.sources import embedded_model_dir
from gateway.engines.torch.engine import TorchEngine
from gateway.engines.torch.packing import MIN_ROW_TOKENS, PackedBert, pack_rows
from tests.tiny_models import build_tiny_encoder_embedder

TEXTS = [
    "Return the absolute value of the argument.",
    "ok",
    "Create a new dictionary with keys from iterable and values set to value. " * 30,  # past 256 tokens
    "Decode the bytes using the codec registered for encoding.",
    "A queue that is safe to share between threads; put() blocks while it is full, get() while empty.",
    "x",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# float32 engines: packing must equal the padded pipeline to float32 rounding (tests/test_precision.py
# measures packed bf16 against float32)
def padded(engine: TorchEngine, batch: list[Tokens]) -> np.ndarray:
    """The model's own sentence-transformers pipeline on a padded batch."""
    with torch.inference_mode():
        return engine.model(engine._features(batch))["sentence_embedding"].float().numpy()


@pytest.fixture(scope="module")
def minilm() -> TorchEngine:
    return TorchEngine(ModelConfig(name="minilm", dtype="float32"), str(embedded_model_dir()))


def test_rows_hold_every_input_once_within_capacity() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(1, 128) for _ in range(300)]
    rows = pack_rows(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert sum(lengths) / (len(rows) * 128) > 0.9  # first-fit decreasing leaves little room unused


def test_packed_vectors_equal_the_padded_pipeline(minilm: TorchEngine) -> None:
    assert minilm._packed is not None  # all-MiniLM-L6-v2: BERT -> mean pooling -> Normalize
    rng = random.Random(0)
    batch = minilm.tokenize([rng.choice(TEXTS) for _ in range(40)])
    assert max(len(t) for t in batch) > MIN_ROW_TOKENS and PackedBert.worth_it(batch)
    packed = minilm.embed(batch)
    assert packed.shape == (40, 384) and packed.dtype == np.float32
    reference = padded(minilm, batch)  # normalized by the model's final Normalize module
    assert cosines(packed, reference).min() > 0.99999
    # the engine leaves that Normalize to the service: raw mean-pooled vectors, not unit length
    assert minilm.spec.normalize and np.abs(np.linalg.norm(packed, axis=1) - 1).min() > 0.01


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_packing_follows_the_pooling_of_an_unnormalized_model(tmp_path, pooling: str) -> None:
    path = build_tiny_encoder_embedder(tmp_path / pooling, "bert", pooling=pooling)
    engine = TorchEngine(ModelConfig(name="tiny", dtype="float32"), str(path))
    assert engine._packed is not None and not engine.spec.normalize
    batch = engine.tokenize(TEXTS * 3)
    np.testing.assert_allclose(engine._packed.embed(batch), padded(engine, batch), rtol=1e-4, atol=1e-5)


def test_other_pipelines_and_even_batches_keep_the_padded_path(tmp_path, minilm: TorchEngine) -> None:
    path = build_tiny_encoder_embedder(tmp_path / "last", "bert", pooling="lasttoken")
    assert TorchEngine(ModelConfig(name="tiny", dtype="float32"), str(path))._packed is None
    roberta = build_tiny_encoder_embedder(tmp_path / "roberta", "xlm-roberta")  # positions offset by padding
    assert TorchEngine(ModelConfig(name="tiny", dtype="float32"), str(roberta))._packed is None
    assert PackedBert.for_model(minilm.model, "cuda") is None
    even = [Tokens([101, 2000 + i, 102]) for i in range(8)]
    assert not PackedBert.worth_it(even) and not PackedBert.worth_it(even[:1])
