"""Torch engine parity on architectures without offline weights, built tiny in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from gateway.config import ModelConfig
from gateway.engines import InputTooLong, load_engine
from tests import tiny_models

PAIRS = [
    ("what is the capital of France?", "Paris is the capital of France."),
    ("what is the capital of France?", "Bananas are yellow."),
    ("how do rerankers work", "A cross-encoder reads the query and the document together. " * 12),
    ("x", "y"),
]


def torch_engine(path: Path, task: str, **overrides):
    """float32 unless ``overrides`` say otherwise: parity with float32 references at tight tolerances."""
    overrides.setdefault("dtype", "float32")
    return load_engine(ModelConfig(name="tiny", source=str(path), engine="torch", task=task, **overrides),
                       str(path))


def test_qwen3_reranker_uses_the_official_prompt_and_matches_transformers(tmp_path: Path) -> None:
    path = tiny_models.build_tiny_qwen3_reranker(tmp_path / "qwen3-reranker")
    engine = torch_engine(path, "rerank", max_tokens=160)
    pairs = [*PAIRS, ("long", "word " * 200)]
    tokens = engine.tokenize_pairs(pairs)
    ids, reference = tiny_models.qwen3_reference_scores(path, pairs, max_length=160)
    assert [t.ids for t in tokens] == ids
    assert np.ptp(reference) > 0.1  # the scores differ per pair, so agreement below means something
    scores = engine.score(tokens)  # one mixed-length batch: left padding must not change any score
    np.testing.assert_allclose(scores, reference, atol=1e-3)
    with pytest.raises(InputTooLong):
        engine.tokenize_pairs(pairs, truncate=False)


def test_bert_cross_encoder_matches_cross_encoder_predict(tmp_path: Path) -> None:
    path = tiny_models.build_tiny_cross_encoder(tmp_path / "bert-ce")
    engine = torch_engine(path, "rerank")
    reference = CrossEncoder(str(path), device="cpu").predict(PAIRS, activation_fn=torch.nn.Identity())
    scores = engine.score(engine.tokenize_pairs(PAIRS))
    assert np.ptp(reference) > 0.5  # scores vary by pair, so agreement below means something
    np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-5)


def test_left_truncation_keeps_the_end_of_a_text() -> None:
    from gateway.engines.sources import embedded_model_dir

    engine = torch_engine(embedded_model_dir(), "embed")
    text = " ".join(f"w{i}" for i in range(400))
    [right] = engine.tokenize([text], max_tokens=16)
    [left] = engine.tokenize([text], max_tokens=16, truncation_side="left")
    assert len(right) == len(left) == 16 and right.truncated and left.truncated
    decoded = engine.decode([left.ids])[0]
    assert decoded.endswith("w399") and "w0 " not in decoded
    assert engine.decode([right.ids])[0].startswith("w0")
