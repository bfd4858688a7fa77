"""Sequence classifiers on the torch engine: class probabilities equal transformers' softmax over
``AutoModelForSequenceClassification`` logits on the same tiny random weights (a 3-label sentiment-style
classifier on single texts, an NLI-style classifier on text pairs), batched with mixed lengths; folders
are recognised as classifiers, and the MLX engine refuses them naming torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from gateway.config import ModelConfig
from gateway.engines import load_engine
from gateway.engines.detect import ModelRefused, default_task, detect_model
from gateway.serving.classify import class_probabilities, tokenize_inputs
from tests.tiny_models import build_tiny_cross_encoder
from tests.tiny_retrieval import build_tiny_classifier

NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
TEXTS = ["I loved this film.", "Terrible.", "The plot was fine but the acting " * 9, "ok"]
PAIRS = [("A man plays a guitar.", "A person makes music."), ("A cat sleeps.", "The dog barks loudly " * 5),
         ("x", "y")]
TOLERANCE = 1e-5  # the bound on probabilities, float32


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifiers")
    return {"sentiment": build_tiny_classifier(root / "sentiment"),
            "nli": build_tiny_classifier(root / "nli", labels=NLI_LABELS, seed=1),
            "unnamed": build_tiny_classifier(root / "unnamed", labels={0: "LABEL_0", 1: "LABEL_1"}),
            "cross-encoder": build_tiny_cross_encoder(root / "cross-encoder")}


def engine(path: Path, **overrides):
    overrides = {"task": "classify", "engine": "torch", "dtype": "float32", **overrides}
    return load_engine(ModelConfig(name="clf", **overrides), str(path))


def reference_probabilities(path: Path, inputs: list) -> np.ndarray:
    """transformers alone: each input tokenized on its own (no padding), softmax over the logits."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    rows = []
    with torch.no_grad():
        for item in inputs:
            args = (item,) if isinstance(item, str) else item
            encoded = tokenizer(*args, truncation=True, max_length=512, return_tensors="pt")
            rows.append(torch.softmax(model(**encoded).logits.double(), dim=-1)[0].numpy())
    return np.stack(rows)


def test_three_label_probabilities_equal_transformers_softmax(folders):
    clf = engine(folders["sentiment"])
    assert (clf.spec.task, clf.spec.outputs, clf.spec.labels) == \
        ("classify", ("classify",), ("negative", "neutral", "positive"))
    # one padded, mixed-length batch
    logits = clf.forward(tokenize_inputs(clf, TEXTS, truncate=True), "classify")
    assert logits.shape == (len(TEXTS), 3) and logits.dtype == np.float32
    probabilities = class_probabilities(logits)
    reference = reference_probabilities(folders["sentiment"], TEXTS)
    assert np.ptp(reference) > 0.05  # the weights are wide enough for the classes to differ
    error = np.abs(probabilities - reference).max()
    print(f"3-label classifier: max |p - p_transformers| = {error:.2e}")
    assert error <= TOLERANCE


def test_nli_pairs_and_single_texts_in_one_batch_equal_transformers(folders):
    clf = engine(folders["nli"])
    inputs = ["a single text", *PAIRS]  # a text first: the pairs' segment ids must survive a mixed batch
    probabilities = class_probabilities(clf.forward(tokenize_inputs(clf, inputs, truncate=True), "classify"))
    reference = reference_probabilities(folders["nli"], inputs)
    error = np.abs(probabilities - reference).max()
    print(f"NLI pair classifier: max |p - p_transformers| = {error:.2e}")
    assert error <= TOLERANCE
    swapped_pair = tokenize_inputs(clf, [PAIRS[0][::-1]], truncate=True)
    swapped = class_probabilities(clf.forward(swapped_pair, "classify"))
    assert np.abs(swapped[0] - probabilities[0]).max() > 1e-4  # the pair's order (and segments) matter


def test_folders_are_served_by_their_labels(folders):
    assert detect_model(folders["sentiment"]).kind == "classifier"
    assert default_task(folders["sentiment"]) == "classify"  # named labels: classify with no task set
    assert default_task(folders["unnamed"]) is None  # LABEL_0, LABEL_1: only when the config says so
    assert default_task(folders["cross-encoder"]) is None  # one logit: stays a reranker
    assert engine(folders["unnamed"]).spec.labels == ("LABEL_0", "LABEL_1")
    with pytest.raises(ModelRefused, match="served with task = 'classify', not task = 'embed'"):
        engine(folders["sentiment"], task="embed")
    with pytest.raises(ModelRefused, match="served with task = 'rerank', not task = 'classify'"):
        engine(folders["cross-encoder"])


def test_a_one_label_cross_encoder_keeps_its_label(folders):
    reranker = engine(folders["cross-encoder"], task="rerank")
    assert reranker.spec.labels == ("LABEL_0",) and reranker.spec.outputs == ("rerank",)


def test_mlx_refuses_classifiers_naming_torch(folders):
    pytest.importorskip("mlx.core")
    with pytest.raises(ValueError, match="engine = 'torch'"):
        engine(folders["sentiment"], engine="mlx")
