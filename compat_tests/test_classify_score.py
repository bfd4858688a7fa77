"""vLLM's ``/classify`` and ``/score``, TEI's ``/predict``, through the real server with tiny random
classifiers and a cross-encoder beside the default MiniLM: wire shapes, probabilities equal to transformers'
softmax on the same weights, scores equal to the references (sigmoid of ``CrossEncoder`` logits, cosine of
``SentenceTransformer`` vectors), usage in model tokens, and errors in each route's own shape."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from compat_tests import fuzz_bodies
from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.server import RunningServer, run_server
from compat_tests.test_fuzz_multipart import run_cases
from tests.test_classifier_engine import NLI_LABELS, reference_probabilities
from tests.tiny_models import build_tiny_cross_encoder, build_tiny_qwen3_reranker
from tests.tiny_retrieval import build_tiny_classifier

TEXTS = ["I loved this film.", "Terrible.", "The plot was fine but the acting " * 9]
PAIRS = [["A man plays a guitar.", "A person makes music."], ["A cat sleeps.", "The dog barks."]]
VLLM_ERROR_KEYS = {"object", "message", "type", "param", "code", "error"}
FUZZ_TEMPLATES = {  # the new routes with models that reach their forward passes
    "/classify": {"model": "sentiment", "input": TEXTS, "truncate_prompt_tokens": 8},
    "/v1/classify": {"model": "nli", "input": "hello"},
    "/predict": {"model": "nli", "inputs": [["a", "b"], ["c"]], "raw_scores": True, "truncate": True,
                 "truncation_direction": "Left"},
    "/score": {"model": "ce", "text_1": "q", "text_2": TEXTS},
    "/v1/score": {"model": "mini", "text_1": TEXTS, "text_2": TEXTS},
}
FUZZ_BODIES, FUZZ_SEED = 800, 23


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    """Folders: a 3-label classifier (no task in the config: detected), an NLI pair classifier (task set),
    a one-logit cross-encoder."""
    root = tmp_path_factory.mktemp("classify-models")
    return {"sentiment": build_tiny_classifier(root / "sentiment"),
            "nli": build_tiny_classifier(root / "nli", labels=NLI_LABELS, seed=1),
            "ce": build_tiny_cross_encoder(root / "ce"), "qwen": build_tiny_qwen3_reranker(root / "qwen")}


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("classify-server")
    config = workdir / "models.toml"
    config.write_text(f'[[models]]\nname = "sentiment"\nsource = "{models["sentiment"]}"\n\n'
                      f'[[models]]\nname = "nli"\nsource = "{models["nli"]}"\ntask = "classify"\n\n'
                      f'[[models]]\nname = "ce"\nsource = "{models["ce"]}"\ntask = "rerank"\n\n'
                      f'[[models]]\nname = "qwen"\nsource = "{models["qwen"]}"\ntask = "rerank"\n\n'
                      f'[[models]]\nname = "mini"\nsource = "{DEFAULT_MODEL}"\n')
    with run_server(workdir, args=["--config", str(config)]) as running:
        yield running


@pytest.fixture(scope="module")
def url(server: RunningServer) -> str:
    return server.url


def post(url: str, path: str, body) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=60)


def token_count(path, texts) -> int:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    return sum(len(tokenizer(*([t] if isinstance(t, str) else t))["input_ids"]) for t in texts)


@pytest.mark.parametrize("path", ["/classify", "/v1/classify"])
def test_classify_answers_vllms_shape_with_transformers_probabilities(url, models, path):
    response = post(url, path, {"model": "sentiment", "input": TEXTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["id", "object", "created", "model", "data", "usage"]
    assert body["id"].startswith("classify-") and body["object"] == "list" and body["model"] == "sentiment"
    assert isinstance(body["created"], int)
    tokens = token_count(models["sentiment"], TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0,
                             "prompt_tokens_details": None}
    reference = reference_probabilities(models["sentiment"], TEXTS)
    labels = ["negative", "neutral", "positive"]
    for i, item in enumerate(body["data"]):
        assert set(item) == {"index", "label", "probs", "num_classes"} and item["index"] == i
        assert item["num_classes"] == 3 and item["label"] == labels[int(np.argmax(reference[i]))]
        np.testing.assert_allclose(item["probs"], reference[i], atol=1e-5)
    single = post(url, path, {"model": "sentiment", "input": TEXTS[0]}).json()["data"]
    assert len(single) == 1 and np.allclose(single[0]["probs"], reference[0], atol=1e-5)


def test_predict_answers_teis_shapes(url, models):
    reference = reference_probabilities(models["sentiment"], TEXTS[:2])
    one = post(url, "/predict", {"inputs": TEXTS[0], "model": "sentiment"}).json()
    assert [set(p) for p in one] == [{"score", "label"}] * 3
    assert [p["score"] for p in one] == sorted((p["score"] for p in one), reverse=True)  # best first
    got = {p["label"]: p["score"] for p in one}
    np.testing.assert_allclose([got["negative"], got["neutral"], got["positive"]], reference[0], atol=1e-5)
    batch = post(url, "/predict", {"inputs": [[TEXTS[0]], [TEXTS[1]]], "model": "sentiment"}).json()
    assert len(batch) == 2 and all(len(row) == 3 for row in batch)
    assert {p["label"]: p["score"] for p in batch[0]} == pytest.approx(got, abs=1e-6)
    raw = post(url, "/predict", {"inputs": TEXTS[1], "model": "sentiment", "raw_scores": True}).json()
    logits = torch.tensor([{p["label"]: p["score"] for p in raw}[name] for name in ("negative", "neutral",
                                                                                    "positive")])
    np.testing.assert_allclose(torch.softmax(logits.double(), 0).numpy(), reference[1], atol=1e-5)


def test_predict_takes_nli_pairs(url, models):
    pair = post(url, "/predict", {"inputs": PAIRS[0], "model": "nli"}).json()  # [a, b]: one pair, TEI reads
    reference = reference_probabilities(models["nli"], [tuple(p) for p in PAIRS] + ["a text"])
    got = {p["label"]: p["score"] for p in pair}
    np.testing.assert_allclose([got[name] for name in NLI_LABELS.values()], reference[0], atol=1e-5)
    batch = post(url, "/predict", {"inputs": [PAIRS[0], PAIRS[1], ["a text"]], "model": "nli"}).json()
    for row, expected in zip(batch, reference, strict=True):
        scores = {p["label"]: p["score"] for p in row}
        np.testing.assert_allclose([scores[name] for name in NLI_LABELS.values()], expected, atol=1e-5)


def test_predict_with_a_reranker_gives_its_sigmoid(url, models):
    from sentence_transformers import CrossEncoder

    logit = CrossEncoder(str(models["ce"]), device="cpu").predict([tuple(PAIRS[0])],
                                                                  activation_fn=torch.nn.Identity())[0]
    [prediction] = post(url, "/predict", {"inputs": PAIRS[0], "model": "ce"}).json()
    assert prediction["label"] == "LABEL_0"
    assert prediction["score"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    [qwen] = post(url, "/predict", {"inputs": PAIRS[0], "model": "qwen"}).json()  # yes/no prompt, one score
    assert qwen["label"] == "LABEL_0" and 0 < qwen["score"] < 1
    alone = post(url, "/predict", {"inputs": "a text alone", "model": "qwen"})  # its prompt needs a pair
    assert alone.status_code == 400 and "text pairs only" in alone.json()["error"]


def test_score_with_a_cross_encoder_and_a_bi_encoder(url, models, reference_model):
    from sentence_transformers import CrossEncoder

    documents = ["Paris is the capital of France.", "Bananas are yellow.", "France's capital city"]
    logits = CrossEncoder(str(models["ce"]), device="cpu").predict(
        [("capital of France", d) for d in documents], activation_fn=torch.nn.Identity())
    for path in ("/score", "/v1/score"):
        body = post(url, path, {"model": "ce", "text_1": "capital of France", "text_2": documents}).json()
        assert list(body) == ["id", "object", "created", "model", "data", "usage"]
        assert body["id"].startswith("score-") and body["object"] == "list"
        assert [(d["index"], d["object"]) for d in body["data"]] == [(0, "score"), (1, "score"), (2, "score")]
        np.testing.assert_allclose([d["score"] for d in body["data"]], 1 / (1 + np.exp(-logits)), atol=1e-5)
        pairs = [("capital of France", d) for d in documents]
        assert body["usage"]["prompt_tokens"] == token_count(models["ce"], pairs)
    queries = ["a cat on a mat", "stock markets"]
    answer = post(url, "/score", {"model": "mini", "text_1": queries, "text_2": documents[:2]}).json()
    vectors = reference_model.encode(queries + documents[:2], normalize_embeddings=True)
    expected = [float(vectors[0] @ vectors[2]), float(vectors[1] @ vectors[3])]  # N:N pairs up in order
    np.testing.assert_allclose([d["score"] for d in answer["data"]], expected, atol=1e-5)


def assert_vllm_error(response: httpx.Response, status: int, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == VLLM_ERROR_KEYS and body["object"] == "error" and body["code"] == status
    assert body["error"] == {k: body[k] for k in ("message", "type", "param", "code")}
    if param is not None:
        assert body["param"] == param
    return body["message"]


def test_vllm_errors(url):
    assert "not a classifier" in assert_vllm_error(post(url, "/classify", {"model": "mini", "input": "x"}),
                                                   400, "model")
    assert_vllm_error(post(url, "/classify", {"model": "nope", "input": "x"}), 404)
    assert_vllm_error(post(url, "/classify", {"model": "sentiment", "input": []}), 400, "input")
    assert_vllm_error(post(url, "/classify", {"model": "sentiment", "input": 5}), 400, "input")
    too_many = {"model": "sentiment", "input": "x", "truncate_prompt_tokens": 100_000}
    assert_vllm_error(post(url, "/classify", too_many), 400, "truncate_prompt_tokens")
    malformed = httpx.post(f"{url}/v1/classify", content=b"{", headers={"content-type": "application/json"})
    assert assert_vllm_error(malformed, 400).startswith("We could not parse the JSON body")
    two_to_three = {"model": "ce", "text_1": ["a", "b"], "text_2": ["c"] * 3}
    message = assert_vllm_error(post(url, "/score", two_to_three), 400, "text_2")
    assert message.startswith("Input lengths must be either 1:1, 1:N or N:N")
    assert_vllm_error(post(url, "/score", {"model": "ce", "text_1": [], "text_2": "c"}), 400, "text_1")
    assert "not pair scores" in assert_vllm_error(
        post(url, "/v1/score", {"model": "sentiment", "text_1": "a", "text_2": "b"}), 400, "model")
    assert_vllm_error(post(url, "/score", {"model": "ce", "text_1": "a"}), 400, "text_2")


def test_tei_errors_and_other_routes_refuse_classifiers(url):
    for body, error_type in (({"inputs": ["a", "b", "c"], "model": "sentiment"}, "Validation"),
                             ({"inputs": [], "model": "sentiment"}, "Empty"),
                             ({"inputs": [["a"], "b"], "model": "sentiment"}, "Validation"),
                             ({"inputs": "x", "model": "mini"}, "Validation"),
                             ({"inputs": "x", "model": "sentiment", "truncation_direction": "Up"},
                              "Validation")):
        response = post(url, "/predict", body)
        assert response.status_code == 400 and response.json()["error_type"] == error_type, response.text
        assert set(response.json()) == {"error", "error_type"}
    empty = post(url, "/similarity", {"inputs": {"source_sentence": "x", "sentences": []}, "model": "mini"})
    assert empty.status_code == 400 and empty.json()["error_type"] == "Empty"  # TEI's error for it
    refused = post(url, "/v1/embeddings", {"model": "sentiment", "input": "x"})
    assert refused.status_code == 400
    assert "is a classifier and cannot embed" in refused.json()["error"]["message"]
    rerank = post(url, "/v1/rerank", {"model": "sentiment", "query": "q", "documents": ["a"]})
    assert rerank.status_code == 400 and "is a classifier and cannot rerank" in rerank.json()["message"]
    assert post(url, "/classify", {"model": "sentiment", "input": "still serving"}).status_code == 200


def test_hostile_bodies_never_hurt_the_server(server, monkeypatch):
    """``fuzz_bodies``' hostile bodies on the classify, predict and score routes: no 5xx, a JSON error with
    every 4xx, some answers 200 (the forward passes are reached), a ready server after."""
    for path, template in FUZZ_TEMPLATES.items():
        monkeypatch.setitem(fuzz_bodies.TEMPLATES, path, template)
    run_cases(server, fuzz_bodies.cases(list(FUZZ_TEMPLATES), FUZZ_BODIES, FUZZ_SEED))


def test_info_and_model_lists_describe_classifiers(url):
    info = httpx.get(f"{url}/info", params={"model": "sentiment"}).json()
    assert info["model_type"] == {"classifier": {
        "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
        "label2id": {"negative": 0, "neutral": 1, "positive": 2}}}
    assert (info["task"], info["outputs"]) == ("classify", ["classify"])
    health = {m["name"]: m for m in httpx.get(f"{url}/health").json()["models"]}
    sentiment = health["sentiment"]  # no task in its config: detected
    assert (sentiment["task"], sentiment["outputs"]) == ("classify", ["classify"])
    reranker = httpx.get(f"{url}/info", params={"model": "ce"}).json()
    assert reranker["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    tags = {m["name"]: m for m in httpx.get(f"{url}/api/tags").json()["models"]}
    assert tags["sentiment:latest"]["capabilities"] == []
    assert tags["mini:latest"]["capabilities"] == ["embedding"]
