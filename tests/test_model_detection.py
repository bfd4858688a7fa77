"""Model folders are recognised from their files, and those whose outputs this server does not serve (SPLADE,
ColBERT, a folder configured with the wrong task, e.g. a classifier as an embedder) are refused before any
weight is loaded, on both engines, instead of being served as if they were dense embedders.

Folders are tiny random models saved by sentence-transformers 6 itself (``SparseEncoder``,
``MultiVectorEncoder``) or written in PyLate's and FlagEmbedding's layouts (``tests/tiny_retrieval.py``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from gateway.config import ModelConfig
from gateway.engines import load_engine
from gateway.engines.detect import ModelRefused, detect_model
from tests.tiny_models import build_tiny_cross_encoder, build_tiny_encoder_embedder, build_tiny_qwen3_reranker
from tests.tiny_retrieval import (
    build_tiny_bge_m3,
    build_tiny_classifier,
    build_tiny_colbert,
    build_tiny_inference_free_splade,
    build_tiny_pylate_colbert,
    build_tiny_splade,
)

SUPPORTED = "this server serves dense embedders"
BUILDERS = {
    "splade": build_tiny_splade,
    "inference-free-splade": build_tiny_inference_free_splade,
    "colbert": build_tiny_colbert,
    "pylate": build_tiny_pylate_colbert,
    "bge-m3": build_tiny_bge_m3,
    "classifier": build_tiny_classifier,
    "two-logit-classifier": lambda path: build_tiny_classifier(path, labels={0: "LABEL_0", 1: "LABEL_1"}),
    "cross-encoder": build_tiny_cross_encoder,
    "dense": lambda path: build_tiny_encoder_embedder(path, "bert"),
    "qwen3-reranker": build_tiny_qwen3_reranker,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("detection")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine loader fails the test if called: a refusal must come before any weight is read."""
    monkeypatch.setattr("gateway.engines.ENGINES", {"torch": f"{__name__}:_engine_loader_called",
                                                    "mlx": f"{__name__}:_engine_loader_called"})


def _engine_loader_called(*_args, **_kwargs):
    raise AssertionError("the engine loader ran for a folder that should have been refused")


SERVED_FOLDERS = [
    ("splade", "sparse", "SPLADE sparse encoder (SparseEncoder: Transformer + SpladePooling)"),
    ("inference-free-splade", "sparse", "inference-free SPLADE"),
    ("colbert", "multi_vector", "multi-vector (ColBERT) encoder (MultiVectorEncoder: Transformer + Dense + "
                                "MultiVectorMask + Normalize)"),
    ("pylate", "multi_vector", "PyLate ColBERT model"),
]


@pytest.mark.parametrize("folder, kind, what", SERVED_FOLDERS, ids=[case[0] for case in SERVED_FOLDERS])
def test_sparse_and_multi_vector_encoders_are_served_with_their_output_on_torch_only(folders, folder, kind,
                                                                                     what):
    detection = detect_model(folders[folder])
    assert detection.kind == kind and what in detection.what
    assert detection.tasks == {"embed": kind}
    engine = load_engine(ModelConfig(name="s", engine="torch", dtype="float32"), str(folders[folder]))
    assert engine.spec.outputs == (kind,) and engine.spec.task == "embed"
    shown = kind.replace("_", "-")
    refusal = rf"model 's': detected .*MLX engine does not serve {shown} output.*engine = 'torch'"
    with pytest.raises(ModelRefused, match=refusal):
        load_engine(ModelConfig(name="s", engine="mlx"), str(folders[folder]))


# (folder, task it is not served with, the task the message points to)
MISMATCHES = [
    ("splade", "rerank", "embed"),
    ("colbert", "rerank", "embed"),
    ("classifier", "embed", "classify"),
    ("two-logit-classifier", "rerank", "classify"),
    ("cross-encoder", "embed", "rerank"),
    ("dense", "rerank", "embed"),
    ("bge-m3", "rerank", "embed"),
]


@pytest.mark.parametrize("folder, task, right", MISMATCHES, ids=[case[0] for case in MISMATCHES])
def test_a_task_the_folder_does_not_serve_is_refused(folders, no_engine, folder, task, right):
    with pytest.raises(ModelRefused, match=rf"model 'm': detected .*served with task = '{right}', "
                                           rf"not task = '{task}'"):
        load_engine(ModelConfig(name="m", engine="torch", task=task), str(folders[folder]))


def test_served_kinds_are_recognised(folders):
    from tests.tiny_models import minilm_dir

    assert detect_model(minilm_dir()).kind == "dense"
    assert detect_model(folders["dense"]).kind == "dense"
    assert detect_model(folders["cross-encoder"]).kind == "cross_encoder"  # one logit: stays a reranker
    qwen3 = detect_model(folders["qwen3-reranker"])  # a Qwen3 causal LM: embedder or reranker, by task
    assert qwen3.kind == "decoder" and set(qwen3.tasks) == {"embed", "rerank"}
    bge = detect_model(folders["bge-m3"])
    assert bge.kind == "bge_m3" and bge.tasks == {"embed": "dense"}


def test_cross_encoders_saved_by_sentence_transformers_stay_rerankers(folders, tmp_path):
    from sentence_transformers import CrossEncoder

    for source, kind in (("cross-encoder", "cross_encoder"), ("qwen3-reranker", "decoder_reranker")):
        saved = tmp_path / source
        CrossEncoder(str(folders[source]), device="cpu", local_files_only=True).save(str(saved))
        assert '"model_type": "CrossEncoder"' in (saved / "config_sentence_transformers.json").read_text()
        assert (detect_model(saved).kind, detect_model(saved).tasks) == (kind, {"rerank": "rerank"})


def test_a_cross_encoder_checkpoint_with_a_dense_pipeline_takes_either_task(folders, tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(folders["cross-encoder"], folder)
    shutil.copy(folders["dense"] / "modules.json", folder)  # the checkpoint keeps its classification head
    shutil.copytree(folders["dense"] / "1_Pooling", folder / "1_Pooling")
    assert detect_model(folder).tasks == {"embed": "dense", "rerank": "rerank"}
    config = ModelConfig(name="m", engine="torch", task="rerank", dtype="float32")
    both, plain = load_engine(config, str(folder)), load_engine(config, str(folders["cross-encoder"]))
    pairs = [("capital of France", "Paris is the capital"), ("capital of France", "bananas")]
    scores = [engine.score(engine.tokenize_pairs(pairs)) for engine in (both, plain)]
    np.testing.assert_allclose(*scores, atol=1e-5)  # the checkpoint's own head, not a new random one


def test_a_folder_without_a_model_is_refused(no_engine, tmp_path):
    with pytest.raises(ModelRefused, match="model 'm': detected a folder with neither modules.json nor "
                                           "config.json"):
        load_engine(ModelConfig(name="m"), str(tmp_path))


def test_a_stanford_colbert_checkpoint_is_refused_before_loading(folders, no_engine, tmp_path):
    folder = tmp_path / "stanford"
    shutil.copytree(folders["dense"], folder, ignore=shutil.ignore_patterns("modules.json", "1_Pooling",
                                                                            "config_sentence_transformers.json"))
    config = (folder / "config.json").read_text().replace('"BertModel"', '"HF_ColBERT"')
    (folder / "config.json").write_text(config)
    assert detect_model(folder).kind == "multi_vector"
    with pytest.raises(ModelRefused, match="Stanford ColBERT checkpoint") as refused:
        load_engine(ModelConfig(name="m", engine="torch"), str(folder))
    assert str(refused.value).startswith("model 'm': detected ") and SUPPORTED in str(refused.value)


def test_bge_m3_serves_its_dense_vectors_and_both_heads_on_torch(folders, caplog):
    from sentence_transformers import SentenceTransformer

    with caplog.at_level(logging.WARNING, logger="gateway.engines"):
        engine = load_engine(ModelConfig(name="m3", engine="torch", dtype="float32"), str(folders["bge-m3"]))
    assert caplog.text == ""  # nothing left unserved on torch
    assert engine.spec.outputs == ("dense", "sparse", "multi_vector")
    assert engine.spec.normalize and engine.spec.pooling == "cls"
    texts = ["hybrid retrieval with dense vectors", "a second text"]
    vectors = engine.embed(engine.tokenize(texts))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    reference = SentenceTransformer(str(folders["bge-m3"]), device="cpu", local_files_only=True).encode(texts)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)


def test_bge_m3_serves_the_same_dense_vectors_on_mlx(folders):
    pytest.importorskip("mlx.core")
    texts = ["hybrid retrieval with dense vectors", "a second text"]
    vectors = [engine.embed(engine.tokenize(texts)) for engine in (
        load_engine(ModelConfig(name="m3", engine="mlx", quantize="none"), str(folders["bge-m3"])),
        load_engine(ModelConfig(name="m3", engine="torch", dtype="float32"), str(folders["bge-m3"])))]
    np.testing.assert_allclose(*vectors, atol=1e-4)
