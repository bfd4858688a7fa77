"""The MLX engine computes what the reference (sentence-transformers / transformers on torch) computes.

Runs on Linux with ``mlx[cpu]``: real all-MiniLM-L6-v2 weights, plus tiny random models built
offline (``tests/tiny_models.py``) for the Qwen3 embedder, a BERT cross-encoder, a Qwen3 reranker and
MLX-quantized copies. MLX on a Linux CPU is slow, so inputs are few and short.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlx.core")
pytest.importorskip("mlx_lm")
pytest.importorskip("mlx_embeddings")

import torch  # noqa: E402
from sentence_transformers import CrossEncoder, SentenceTransformer  # noqa: E402

from gateway.config import ModelConfig  # noqa: E402
from gateway.engines import Engine, InputTooLong, load_engine  # noqa: E402
from tests import tiny_models  # noqa: E402

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "MLX runs on Apple silicon.",
    "A much longer passage about embeddings, rerankers and local inference servers. " * 30,  # > 256 tokens
    "ok",
]
PAIRS = [
    ("what is mlx?", "MLX is an array framework for machine learning on Apple silicon."),
    ("capital of france", "Paris is the capital and largest city of France."),
    ("capital of france", "Bananas are rich in potassium. " * 10),
    ("short", "x"),
]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, dim)`` arrays."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def engine(path: Path, name: str, task: str = "embed", **overrides) -> Engine:
    """Load ``path`` with engine ``name`` (``mlx`` or ``torch``), float32 and unquantized unless
    ``overrides`` say otherwise: parity with float32 references at tight tolerances."""
    overrides = {"dtype": "float32", "quantize": "none", **overrides}
    return load_engine(ModelConfig(name=path.name, engine=name, task=task, **overrides), str(path))


@pytest.fixture(scope="module")
def minilm() -> Path:
    return tiny_models.minilm_dir()


@pytest.fixture(scope="module")
def minilm_mlx(minilm: Path) -> Engine:
    return engine(minilm, "mlx")


@pytest.fixture(scope="module")
def qwen3_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_tiny_qwen3_embedder(tmp_path_factory.mktemp("qwen3-embedder"))


@pytest.fixture(scope="module")
def qwen3_mlx(qwen3_embedder: Path) -> Engine:
    return engine(qwen3_embedder, "mlx")


@pytest.fixture(scope="module")
def qwen3_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.build_tiny_qwen3_reranker(tmp_path_factory.mktemp("qwen3-reranker"))


# -- encoder embedder: all-MiniLM-L6-v2 --------------------------------------------------------------


def test_minilm_spec_and_tokens_match_torch(minilm: Path, minilm_mlx: Engine) -> None:
    torch_engine = engine(minilm, "torch")
    spec = minilm_mlx.spec
    assert (spec.engine, spec.device, spec.dim, spec.max_tokens) == ("mlx", "cpu", 384, 256)
    assert (spec.pooling, spec.normalize) == (torch_engine.spec.pooling, torch_engine.spec.normalize)
    assert minilm_mlx.tokenize(TEXTS) == torch_engine.tokenize(TEXTS)
    assert minilm_mlx.tokenize_pairs(PAIRS) == torch_engine.tokenize_pairs(PAIRS)
    assert minilm_mlx.split_text(TEXTS[2], 50) == torch_engine.split_text(TEXTS[2], 50)


def test_minilm_rejects_long_input_when_not_truncating(minilm_mlx: Engine) -> None:
    with pytest.raises(InputTooLong) as err:
        minilm_mlx.tokenize(TEXTS, truncate=False)
    assert (err.value.index, err.value.limit) == (2, 256)


def test_minilm_matches_sentence_transformers(minilm: Path, minilm_mlx: Engine) -> None:
    reference = SentenceTransformer(str(minilm), device="cpu", local_files_only=True).encode(TEXTS)
    tokens = minilm_mlx.tokenize(TEXTS)
    assert tokens[2].truncated and len(tokens[2]) == 256
    batch = minilm_mlx.embed(tokens)
    alone = np.concatenate([minilm_mlx.embed([t]) for t in tokens])
    assert batch.shape == (len(TEXTS), 384) and batch.dtype == np.float32
    assert cosine(batch, reference).min() >= 0.9999
    assert cosine(alone, reference).min() >= 0.9999
    # both engines return the vectors before MiniLM's final Normalize, which the service applies
    torch_raw = engine(minilm, "torch").embed(tokens)
    assert minilm_mlx.spec.normalize and np.abs(np.linalg.norm(batch, axis=1) - 1).min() > 0.01
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), np.linalg.norm(torch_raw, axis=1), rtol=1e-3)


@pytest.mark.parametrize("memory_gib", [None, 8, 16])  # None: this machine's memory
def test_minilm_with_auto_quantization_matches_sentence_transformers(
        minilm: Path, monkeypatch, memory_gib: int | None) -> None:
    """``quantize = "auto"`` keeps a model this small at full precision on any machine (the old rule
    served it at 4 bits under 30 GiB: min cosine 0.936)."""
    if memory_gib is not None:
        monkeypatch.setattr("gateway.engines.mlx.quantize.machine_memory_bytes", lambda: memory_gib * 2**30)
    auto = engine(minilm, "mlx", quantize="auto", dtype="auto")
    assert auto.spec.quantization is None and "fit the weight budget" in auto.spec.quantization_reason
    reference = SentenceTransformer(str(minilm), device="cpu", local_files_only=True).encode(TEXTS[:2])
    assert cosine(auto.embed(auto.tokenize(TEXTS[:2])), reference).min() >= 0.9999


def test_embed_from_another_thread_than_the_loader(minilm_mlx: Engine) -> None:
    tokens = minilm_mlx.tokenize(TEXTS[:2])
    expected = minilm_mlx.embed(tokens)
    results: dict[str, np.ndarray | BaseException] = {}

    def runner() -> None:  # like the server's runner thread: not the thread that loaded the model
        try:
            results["vectors"] = minilm_mlx.embed(minilm_mlx.tokenize(TEXTS[:2]))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            results["vectors"] = exc

    thread = threading.Thread(target=runner)
    thread.start()
    thread.join()
    assert isinstance(results["vectors"], np.ndarray), results["vectors"]
    np.testing.assert_allclose(results["vectors"], expected, atol=1e-6)


ENCODER_CASES = [("bert", "cls"), ("xlm-roberta", "mean"), ("modernbert", "mean"), ("modernbert", "cls")]


@pytest.mark.parametrize(("family", "pooling"), ENCODER_CASES)
def test_encoder_families_match_torch_engine(tmp_path: Path, family: str, pooling: str) -> None:
    path = tiny_models.build_tiny_encoder_embedder(tmp_path / family, family, pooling)
    mlx_engine, torch_engine = engine(path, "mlx"), engine(path, "torch")
    assert (mlx_engine.spec.pooling, mlx_engine.spec.normalize) == (pooling, False)
    assert mlx_engine.spec.max_tokens == torch_engine.spec.max_tokens
    tokens = mlx_engine.tokenize(TEXTS)
    assert tokens == torch_engine.tokenize(TEXTS)
    assert cosine(mlx_engine.embed(tokens), torch_engine.embed(tokens)).min() >= 0.9999


def test_config_overrides_pooling_and_normalize(minilm: Path) -> None:
    mlx_engine = engine(minilm, "mlx", pooling="cls", normalize=False)
    assert (mlx_engine.spec.pooling, mlx_engine.spec.normalize) == ("cls", False)
    reference = SentenceTransformer(str(minilm), device="cpu", local_files_only=True)
    tokens = mlx_engine.tokenize(TEXTS[:2])
    cls_states = reference.encode(TEXTS[:2], output_value="token_embeddings")
    expected = np.stack([states[0].numpy() for states in cls_states])
    np.testing.assert_allclose(mlx_engine.embed(tokens), expected, atol=1e-4)


# -- decoder embedder: tiny Qwen3-Embedding -----------------------------------------------------------


def test_qwen3_embedder_matches_torch_engine(qwen3_embedder: Path, qwen3_mlx: Engine) -> None:
    torch_engine = engine(qwen3_embedder, "torch")
    for field in ("dim", "max_tokens", "pooling", "normalize", "prompts"):
        assert getattr(qwen3_mlx.spec, field) == getattr(torch_engine.spec, field), field
    assert qwen3_mlx.spec.pooling == "last" and qwen3_mlx.spec.normalize
    texts = [qwen3_mlx.spec.prompts["query"] + TEXTS[0], *TEXTS[1:]]
    tokens = qwen3_mlx.tokenize(texts)
    assert tokens == torch_engine.tokenize(texts)
    vectors = qwen3_mlx.embed(tokens)
    assert vectors.shape == (len(texts), 64) and vectors.dtype == np.float32
    assert cosine(vectors, torch_engine.embed(tokens)).min() >= 0.999
    assert cosine(np.concatenate([qwen3_mlx.embed([t]) for t in tokens]), vectors).min() >= 0.9999


# Random Gaussian weights are the worst case for 4-bit (measured cosine 0.980-0.993 here); trained
# weights, with their outliers handled by per-group scales, lose less.
@pytest.mark.parametrize(("bits", "min_cosine"), [(8, 0.999), (4, 0.97)])
def test_quantized_qwen3_embedder_stays_close(
    qwen3_embedder: Path, qwen3_mlx: Engine, tmp_path: Path, bits: int, min_cosine: float
) -> None:
    quantized_dir = tiny_models.quantize_mlx_copy(qwen3_embedder, tmp_path / f"q{bits}", bits=bits)
    quantized = engine(quantized_dir, "mlx")
    assert quantized.spec == dataclasses.replace(
        qwen3_mlx.spec, name=quantized_dir.name, quantization=f"q{bits}",
        quantization_reason=f"the folder is already {bits}-bit MLX-quantized")
    tokens = qwen3_mlx.tokenize(TEXTS)
    assert cosine(quantized.embed(tokens), qwen3_mlx.embed(tokens)).min() >= min_cosine


# -- rerankers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "modernbert"])
def test_cross_encoder_matches_torch_and_cross_encoder(tmp_path: Path, family: str) -> None:
    path = tiny_models.build_tiny_cross_encoder(tmp_path / family, family)
    mlx_engine, torch_engine = engine(path, "mlx", "rerank"), engine(path, "torch", "rerank")
    assert mlx_engine.spec.max_tokens == torch_engine.spec.max_tokens == 512
    tokens = mlx_engine.tokenize_pairs(PAIRS)
    assert tokens == torch_engine.tokenize_pairs(PAIRS)
    reference = CrossEncoder(str(path), device="cpu", local_files_only=True).predict(
        PAIRS, activation_fn=torch.nn.Identity()
    )
    torch_scores, mlx_scores = torch_engine.score(tokens), mlx_engine.score(tokens)
    assert np.ptp(reference) > 0.5  # scores vary by pair, so the comparisons below mean something
    np.testing.assert_allclose(torch_scores, reference, rtol=1e-4, atol=1e-5)
    assert mlx_scores.shape == (len(PAIRS),) and mlx_scores.dtype == np.float32
    np.testing.assert_allclose(mlx_scores, torch_scores, rtol=0, atol=1e-3)  # the bound


def test_qwen3_reranker_matches_transformers(qwen3_reranker: Path) -> None:
    mlx_engine = engine(qwen3_reranker, "mlx", "rerank", max_tokens=160)  # the prompt frame alone is 77
    pairs = [*PAIRS, ("long", "word " * 200)]
    tokens = mlx_engine.tokenize_pairs(pairs)
    ids, reference = tiny_models.qwen3_reference_scores(qwen3_reranker, pairs, max_length=160)
    assert [t.ids for t in tokens] == ids
    assert [t.truncated for t in tokens] == [False, False, True, False, True] and len(tokens[-1]) == 160
    scores = mlx_engine.score(tokens)
    assert scores.shape == (len(pairs),) and scores.dtype == np.float32
    assert np.ptp(reference) > 0.1  # scores depend on the pair, so the comparison below means something
    np.testing.assert_allclose(scores, reference, atol=1e-3)
    with pytest.raises(InputTooLong):
        mlx_engine.tokenize_pairs(pairs, truncate=False)


def test_memory_fraction_env_is_accepted_and_leaves_cpu_alone(
    qwen3_embedder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlx.core as mx

    monkeypatch.setenv("GATEWAY_MLX_MEMORY_FRACTION", "0.5")
    limit = mx.get_memory_limit()
    assert engine(qwen3_embedder, "mlx").spec.device == "cpu"
    assert mx.get_memory_limit() == limit  # the cap applies to GPU (Metal) memory only
