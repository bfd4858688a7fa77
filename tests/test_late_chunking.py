"""Late chunking in the engines: joined tokens and spans, and span-pooled vectors that equal an independent
computation on transformers (torch engine on real MiniLM weights and on a pipeline with a Dense module
after pooling; the MLX engine against the torch engine on the same weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gateway.config import ModelConfig
from gateway.engines import load_engine
from gateway.engines.text.late_chunking import SpanTokens, special_frame
from gateway.errors import UnprocessableInput
from tests import tiny_models

CHUNKS = [
    "Berlin is the capital and largest city of Germany.",
    "Its more than 3.85 million inhabitants make it the most populous city of the European Union.",
    "The city is also one of the states of Germany.",
]


def load(path: Path, engine: str = "torch"):
    """float32, unquantized: the tests compare with float32 references at tight tolerances."""
    return load_engine(ModelConfig(name=path.name, source=str(path), engine=engine, dtype="float32",
                                   quantize="none"), str(path))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def reference_spans(path: Path, joined: SpanTokens, head: torch.nn.Module | None = None) -> np.ndarray:
    """transformers' own forward pass on the joined ids, then the mean of each span (then ``head``)."""
    import transformers

    model = transformers.AutoModel.from_pretrained(str(path)).eval()
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor([joined.ids])).last_hidden_state[0]
        pooled = torch.stack([hidden[a:b].mean(0) for a, b in joined.spans])
        return (head(pooled) if head is not None else pooled).numpy()


@pytest.fixture(scope="module")
def minilm():
    path = tiny_models.minilm_dir()
    return path, load(path)


def test_joined_tokens_hold_each_input_once_in_order(minilm):
    _, engine = minilm
    joined = engine.tokenize_joined(CHUNKS, prompt="passage: ")
    head, tail = special_frame(engine.tokenizer)
    assert (head, tail) == ([engine.tokenizer.cls_token_id], [engine.tokenizer.sep_token_id])
    assert joined.ids[:1] == head and joined.ids[-1:] == tail
    prompt = engine.tokenizer("passage: ", add_special_tokens=False)["input_ids"]
    assert joined.ids[1:1 + len(prompt)] == prompt and joined.spans[0][0] == 1 + len(prompt)
    for text, (a, b) in zip(CHUNKS, joined.spans, strict=True):
        assert joined.ids[a:b] == engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert [b for _, b in joined.spans[:-1]] == [a for a, _ in joined.spans[1:]]  # contiguous
    with pytest.raises(UnprocessableInput, match="input 1 has no tokens"):
        engine.tokenize_joined(["ok", "\u200b"])


def test_torch_spans_equal_transformers_and_see_their_context(minilm):
    path, engine = minilm
    assert engine._scripted is not None  # the traced pass, as ``embed`` runs it (torch.scripted)
    joined = engine.tokenize_joined(CHUNKS)
    short = engine.tokenize_joined(CHUNKS[:2])
    rows = engine.embed_spans([joined, short])  # one padded batch of two sequences of different lengths
    assert [r.shape for r in rows] == [(3, 384), (2, 384)] and rows[0].dtype == np.float32
    assert cosine(rows[0], reference_spans(path, joined)).min() >= 0.9999
    assert cosine(rows[1], reference_spans(path, short)).min() >= 0.9999
    alone = engine.embed(engine.tokenize(CHUNKS))
    # each chunk keeps its own meaning, but its vector now depends on the others (the point of it)
    assert 0.5 < cosine(rows[0], alone).min() and cosine(rows[0], alone).max() < 0.999


def test_torch_spans_go_through_the_modules_after_pooling(tmp_path: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    path = tiny_models.build_tiny_encoder_embedder(tmp_path / "bert", "bert", "mean")
    torch.manual_seed(1)
    dense = Dense(64, 16, activation_function=torch.nn.Tanh())
    model = SentenceTransformer(str(path), device="cpu")
    SentenceTransformer(modules=[*model, dense], device="cpu").save(str(tmp_path / "dense"))
    dense_path = tmp_path / "dense"
    (dense_path / "config.json").write_text((path / "config.json").read_text())
    engine = load(dense_path)
    joined = engine.tokenize_joined(CHUNKS)
    [rows] = engine.embed_spans([joined])
    head = lambda x: dense({"sentence_embedding": x})["sentence_embedding"]  # noqa: E731
    expected = reference_spans(path, joined, head)
    assert rows.shape == (3, 16)
    np.testing.assert_allclose(rows, expected, atol=1e-5)


def test_mlx_spans_equal_the_torch_engine(minilm):
    pytest.importorskip("mlx.core")
    pytest.importorskip("mlx_embeddings")
    path, torch_engine = minilm
    mlx_engine = load(path, "mlx")
    joined = mlx_engine.tokenize_joined(CHUNKS[:2], prompt="query: ")
    assert joined == torch_engine.tokenize_joined(CHUNKS[:2], prompt="query: ")
    [mlx_rows] = mlx_engine.embed_spans([joined])
    [torch_rows] = torch_engine.embed_spans([joined])
    assert cosine(mlx_rows, torch_rows).min() >= 0.9999
