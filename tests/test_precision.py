"""Accuracy of the fast number formats against float32 (issue: "accuracy is measured, not assumed").

bfloat16 on the torch engine with the real default model (all-MiniLM-L6-v2) on real mixed-length text
(stdlib docstrings); cross-encoders and Qwen3 rerankers on tiny random models; MLX 8-bit and 4-bit
quantization at load against the unquantized MLX model; determinism and batch invariance at each
precision. The retrieval check (MRR@10 per precision) is ``benchmarks/precision.py``: telling a 0.005
difference from noise takes a thousand queries, too slow for the test suite. bfloat16 runs on any CPU
(slowly where it is emulated), so these tests do not depend on the machine having AMX.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import pytest

from gateway.bench.corpus import load_corpus
from gateway.config import ModelConfig
from gateway.engines import Engine, load_engine
from gateway.engines.sources import embedded_model_dir
from tests import tiny_models

PRECISIONS = ["float32", "bfloat16"]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def torch_engine(path: Path | str, dtype: str, task: str = "embed") -> Engine:
    config = ModelConfig(name="m", source=str(path), engine="torch", task=task, dtype=dtype)
    return load_engine(config, str(path))


@pytest.fixture(scope="module")
def minilm() -> dict[str, Engine]:
    return {dtype: torch_engine(embedded_model_dir(), dtype) for dtype in PRECISIONS}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return load_corpus().mixed[:96]  # whole docstrings: a few tokens to past the 256-token limit


def batches(engine: Engine, texts: list[str], size: int = 16) -> np.ndarray:
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    return np.concatenate([engine.embed(engine.tokenize(chunk)) for chunk in chunks])


def test_bf16_vectors_stay_within_the_bound_of_fp32_on_mixed_text(minilm, texts) -> None:
    fp32, bf16 = minilm["float32"], minilm["bfloat16"]
    assert (fp32.spec.dtype, bf16.spec.dtype) == ("float32", "bfloat16")
    vectors = batches(bf16, texts)  # mixed lengths: mostly the packed path
    assert vectors.dtype == np.float32
    assert cosine(vectors, batches(fp32, texts)).min() >= 0.9995
    by_length = sorted(texts, key=len)  # similar lengths: the padded path
    assert cosine(batches(bf16, by_length), batches(fp32, by_length)).min() >= 0.9995


@pytest.mark.parametrize("dtype", PRECISIONS)
def test_vectors_are_deterministic_and_batch_invariant(minilm, texts, dtype: str) -> None:
    engine = minilm[dtype]
    batch = engine.tokenize(texts[:24])
    first = engine.embed(batch)
    try:  # another thread count (another runner lane share) must not change a vector
        engine.share_cores(2)
        np.testing.assert_allclose(engine.embed(batch), first, rtol=0, atol=1e-5)
    finally:
        engine.share_cores(1)
    np.testing.assert_allclose(engine.embed(batch), first, rtol=0, atol=1e-5)
    solo = np.concatenate([engine.embed([tokens]) for tokens in batch])
    assert cosine(solo, first).min() >= 0.9999


RERANK_CASES = [
    ("what is the capital of france", ["Paris is the capital of France.", "Bananas are yellow.",
                                       "Berlin is in Germany.", "The Eiffel tower stands in Paris.",
                                       "Python is a programming language. " * 8]),
    ("how do i sort a list in python", ["Use sorted(items) or items.sort().", "Lists hold items.",
                                        "Bubble sort is slow.", "The Nile is a river in Africa."]),
    ("python packaging", ["pip installs packages from PyPI.", "Cats sleep most of the day.",
                          "a much longer document about nothing in particular " * 5]),
]


# At the usual scale the tiny random Qwen3 reranker scores every pair within ~0.1 of the others, ties
# that any rounding reorders; at 25x its scores spread over several units, as a trained model's do.
SPREAD_QWEN3 = functools.partial(tiny_models.build_tiny_qwen3_reranker, initializer_range=0.5)


@pytest.mark.parametrize("build", [tiny_models.build_tiny_cross_encoder, SPREAD_QWEN3], ids=["bert", "qwen3"])
def test_bf16_rerankers_rank_the_same_documents_first(tmp_path: Path, build) -> None:
    path = build(tmp_path / "reranker")
    fp32, bf16 = torch_engine(path, "float32", "rerank"), torch_engine(path, "bfloat16", "rerank")
    for query, documents in RERANK_CASES:
        pairs = [(query, d) for d in documents]
        reference, scores = (e.score(e.tokenize_pairs(pairs)) for e in (fp32, bf16))
        assert scores.dtype == np.float32 and np.ptp(reference) > 0.1
        assert int(np.argmax(scores)) == int(np.argmax(reference))


@pytest.mark.parametrize("family", ["qwen3", "bert"])
@pytest.mark.parametrize(("quantize", "bound"), [("q8", 0.995), ("q4", 0.98)])
def test_mlx_quantized_at_load_stays_close_to_full_precision(tmp_path: Path, texts, family: str,
                                                             quantize: str, bound: float) -> None:
    pytest.importorskip("mlx_lm")
    pytest.importorskip("mlx_embeddings")
    if family == "qwen3":
        path = tiny_models.build_tiny_qwen3_embedder(tmp_path / family)
    else:
        path = tiny_models.build_tiny_encoder_embedder(tmp_path / family, "bert")

    def mlx(setting: str) -> Engine:
        return load_engine(ModelConfig(name=family, engine="mlx", quantize=setting), str(path))

    full, quantized = mlx("none"), mlx(quantize)
    assert (full.spec.quantization, quantized.spec.quantization) == (None, quantize)
    tokens = full.tokenize(texts[:12])
    reference = full.embed(tokens)
    vectors = quantized.embed(tokens)
    assert np.abs(vectors - reference).max() > 1e-3  # the weights did change
    assert cosine(vectors, reference).min() >= bound
    np.testing.assert_allclose(quantized.embed(tokens), vectors, rtol=0, atol=1e-5)
    solo = np.concatenate([quantized.embed([t]) for t in tokens[:4]])
    assert cosine(solo, vectors[:4]).min() >= 0.9999


def test_mixed_batches_differ_from_solo_only_by_rounding(minilm) -> None:
    rng = random.Random(3)
    texts = [rng.choice(load_corpus().short) for _ in range(8)] + ["ok"]
    engine = minilm["bfloat16"]
    batch = engine.tokenize(texts)
    solo = np.concatenate([engine.embed([t]) for t in batch])
    assert cosine(solo, engine.embed(batch)).min() >= 0.9999


def test_a_prequantized_mlx_folder_loads_as_it_is(tmp_path: Path, texts) -> None:
    pytest.importorskip("mlx_lm")
    source = tiny_models.build_tiny_qwen3_embedder(tmp_path / "qwen3")
    folder = tiny_models.quantize_mlx_copy(source, tmp_path / "q4-folder", bits=4)

    def mlx(setting: str) -> Engine:
        return load_engine(ModelConfig(name="q4", engine="mlx", quantize=setting), str(folder))

    shipped, asked_q8 = mlx("none"), mlx("q8")
    assert shipped.spec.quantization == asked_q8.spec.quantization == "q4"
    tokens = shipped.tokenize(texts[:4])
    np.testing.assert_allclose(asked_q8.embed(tokens), shipped.embed(tokens), rtol=0, atol=1e-6)
