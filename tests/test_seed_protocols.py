"""The seed projects' pure converters (embed-rerank, tkr-embed, TEI ``/similarity``) and the default model
choice of their routes, without a server."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gateway.errors import InvalidRequest, NotReady
from gateway.http.routes.model_choice import first_model
from gateway.protocol import embed_rerank as er
from gateway.protocol import tkr_embed
from gateway.protocol.fastapi_errors import ValidationFailed, decode_json, from_msgspec


def test_msgspec_errors_become_fastapi_locations():
    assert from_msgspec("Expected `str`, got `int` - at `$.texts[2]`").loc == ["body", "texts", 2]
    missing = from_msgspec("Object missing required field `texts`")
    assert missing.loc == ["body", "texts"] and missing.kind == "missing" and missing.status == 422
    with pytest.raises(ValidationFailed) as caught:
        decode_json(b'{"texts": ["a", 1]}', er.EmbedRequest)
    assert caught.value.loc == ["body", "texts", 1]
    with pytest.raises(ValidationFailed):
        decode_json(b"{", er.EmbedRequest)


def test_embed_rerank_rerank_inputs_map_its_aliases():
    documents = ["a", {"content": "b"}, {"text": "", "body": "c"}]
    data = er.RerankRequest(query=" q ", documents=documents, top_n=50)
    assert er.rerank_inputs(data) == (["a", "b", "c"], 3)  # top_k cut to the passage count
    assert er.rerank_inputs(er.RerankRequest(query="q", passages=["a"] * 20))[1] == 10  # default top_k
    with pytest.raises(ValidationFailed, match="less than or equal to 100"):
        er.rerank_inputs(er.RerankRequest(query="q", passages=["a"], top_k=101))


def test_embed_rerank_error_bodies():
    assert er.error_body(InvalidRequest("bad")) == {"error": "api_error", "detail": "bad", "status_code": 400}
    body = er.error_body(ValidationFailed("too many", ["body", "texts"], kind="too_long"))
    assert body["detail"] == [{"type": "too_long", "loc": ["body", "texts"], "msg": "too many",
                               "input": None}]


def test_similarity_cosine_and_euclidean_without_overflow():
    query = np.array([[1e300, 1e300], [0.0, 0.0]])
    candidates = np.array([[1e300, -1e300], [2e300, 2e300]])
    cosine = tkr_embed.similarities(query, candidates, "cosine")
    np.testing.assert_allclose(cosine, [[0.0, 1.0], [0.0, 0.0]], atol=1e-12)  # a zero vector scores 0
    small = np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(tkr_embed.similarities(*small, "euclidean"), [[1 / 6, 1.0]])
    huge = tkr_embed.similarities(query, candidates, "euclidean")
    assert np.isfinite(huge).all() and huge[0, 1] > 0


def test_declared_upload_types():
    png = b"\x89PNG\r\n\x1a\n" + bytes(20)
    tkr_embed.check_declared_type("image/png", png, "file")
    tkr_embed.check_declared_type("application/octet-stream", png, "file")
    tkr_embed.check_declared_type("image/heic", b"anything", "file")  # left to the decoder
    with pytest.raises(InvalidRequest, match="holds a PNG"):
        tkr_embed.check_declared_type("image/jpeg", png, "file")
    with pytest.raises(InvalidRequest, match="must be an image"):
        tkr_embed.check_declared_type("text/plain", png, "file")


def served(name: str, modalities, state: str = "ready", task: str = "embed", fuses: bool = False):
    engine = SimpleNamespace(spec=SimpleNamespace(modalities=modalities, fuses=fuses)) if modalities else None
    return SimpleNamespace(name=name, state=state, engine=engine,
                           config=SimpleNamespace(task=task, modalities=None))


def registry(*models):
    return SimpleNamespace(models=list(models), names=[m.name for m in models])


def test_first_model_per_modality():
    models = registry(served("reranker", ("text",), task="rerank"), served("minilm", ("text",)),
                      served("clip", ("text", "image")), served("vlm", ("text", "image"), fuses=True))
    assert first_model(models, "text") == "minilm"
    assert first_model(models, "image") == "clip"
    assert first_model(models, "image", fuses=True) == "vlm"
    with pytest.raises(InvalidRequest, match="embeds image"):
        first_model(registry(served("minilm", ("text",))), "image")
    with pytest.raises(NotReady):  # the image model might be the one still loading
        first_model(registry(served("minilm", ("text",)), served("clip", None, state="loading")), "image")
