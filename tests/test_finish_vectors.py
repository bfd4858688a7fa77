"""``service.finish_vectors``: Matryoshka truncation and the normalize choice of each route."""

from __future__ import annotations

import numpy as np

from gateway.config import ModelConfig
from gateway.engines.sources import embedded_model_dir
from gateway.engines.torch.engine import TorchEngine
from gateway.serving.service import finish_vectors

RAW = np.array([[3.0, 4.0, 12.0], [0.0, 2.0, 0.0]], np.float32)  # norms 13 and 2


def norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=1)


def test_model_default_follows_the_model_and_renormalizes_truncated_vectors() -> None:
    np.testing.assert_allclose(norms(finish_vectors(RAW, True)), 1, atol=1e-6)
    np.testing.assert_array_equal(finish_vectors(RAW, False), RAW)
    cut = finish_vectors(RAW, False, dimensions=2)  # OpenAI dimensions: always unit length
    np.testing.assert_allclose(cut, [[0.6, 0.8], [0.0, 1.0]], atol=1e-6)


def test_explicit_normalize_wins_over_the_model() -> None:
    np.testing.assert_array_equal(finish_vectors(RAW, True, normalize=False), RAW)
    np.testing.assert_array_equal(finish_vectors(RAW, True, dimensions=2, normalize=False), RAW[:, :2])
    np.testing.assert_allclose(norms(finish_vectors(RAW, False, normalize=True)), 1, atol=1e-6)


def test_torch_engine_honours_the_normalize_override() -> None:
    path = str(embedded_model_dir())
    assert TorchEngine(ModelConfig(name="m"), path).spec.normalize  # MiniLM ends in Normalize
    assert not TorchEngine(ModelConfig(name="m", normalize=False), path).spec.normalize
