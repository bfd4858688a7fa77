"""Pure pieces of the Voyage, Jina, Mistral, Ollama and null-as-absent dialects: field merging and
conflicts, prompt names, body detection, byte encodings, Ollama's name and option rules."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest

from gateway.config import ModelConfig
from gateway.engines import ModelSpec
from gateway.errors import InvalidRequest
from gateway.protocol import jina, ollama, ollama_models, openai, openai_dialects, tei, tei_rerank, voyage
from gateway.protocol.openai import EmbeddingRequest
from gateway.protocol.quantization import quantize
from gateway.serving.late_chunking import embed_late_chunked
from gateway.serving.registry import ServedModel


def request(**fields) -> EmbeddingRequest:
    body = msgspec.json.encode({"input": "x", "model": "m", **fields})
    return msgspec.json.decode(body, type=EmbeddingRequest)


def test_plain_openai_request_has_the_default_options():
    assert openai_dialects.resolve(request()) == openai_dialects.EmbeddingOptions()


@pytest.mark.parametrize("fields, expected", [
    ({"encoding_format": "base64"}, {"base64": True}),
    ({"encoding_format": "int8"}, {"dtype": "int8"}),
    ({"output_dtype": "ubinary", "encoding_format": "base64"},
     {"dtype": "ubinary", "dtype_param": "output_dtype", "base64": True}),
    ({"embedding_type": "binary"}, {"dtype": "binary", "dtype_param": "embedding_type"}),
    ({"encoding_type": "base64"}, {"base64": True}),
    ({"output_dtype": "int8", "embedding_type": "int8", "encoding_format": "float"},
     {"dtype": "int8", "dtype_param": "output_dtype"}),
    ({"output_dimension": 64}, {"dimensions": 64, "dimensions_param": "output_dimension"}),
    ({"dimensions": 64, "output_dimension": 64}, {"dimensions": 64}),
    ({"input_type": "query"}, {"prompt_names": ("query",)}),
    ({"input_type": "passage"}, {"prompt_names": ("document",)}),
    ({"task": "retrieval.passage"}, {"prompt_names": ("retrieval.passage", "document")}),
    ({"task": "separation"}, {"prompt_names": ("separation",)}),
    ({"truncation": False}, {"truncate": False}),
    ({"truncate": True, "truncation": True}, {"truncate": True}),
    ({"normalized": False, "late_chunking": True}, {"normalize": False, "late_chunking": True}),
])
def test_fields_of_every_dialect_merge_into_options(fields, expected):
    assert openai_dialects.resolve(request(**fields)) == openai_dialects.EmbeddingOptions(**expected)


@pytest.mark.parametrize("fields, param", [
    ({"dimensions": 64, "output_dimension": 128}, "output_dimension"),
    ({"output_dtype": "int8", "embedding_type": "binary"}, "embedding_type"),
    ({"encoding_format": "uint8", "output_dtype": "int8"}, "output_dtype"),
    ({"embedding_type": "float", "encoding_type": "ubinary"}, "encoding_type"),
    ({"truncation": True, "truncate": False}, "truncate"),
    ({"input_type": "query", "task": "retrieval.query"}, "task"),
])
def test_contradicting_fields_are_a_400_naming_the_second(fields, param):
    with pytest.raises(InvalidRequest) as info:
        openai_dialects.resolve(request(**fields))
    assert info.value.param == param


def test_null_is_absent_in_every_optional_field():
    nulls = {name: None for name in EmbeddingRequest.__struct_fields__ if name not in ("input", "model")}
    assert request(**nulls) == request()
    assert request(encoding_format=None).encoding_format == "float"
    assert tei.EmbedRequest(inputs="x", normalize=None, truncation_direction=None) == \
        tei.EmbedRequest(inputs="x")
    assert msgspec.json.decode(b'{"query": "q", "texts": ["t"], "raw_scores": null, "return_text": null}',
                               type=tei_rerank.TeiRerankRequest).raw_scores is False
    assert ollama.RerankRequest(query="q", documents=["d"], return_documents=None).return_documents is True
    with pytest.raises(msgspec.ValidationError):  # a required field stays required
        msgspec.json.decode(b'{"input": null, "model": "m"}', type=EmbeddingRequest)


@pytest.mark.parametrize("dtype", ["float", "int8", "uint8", "binary", "ubinary"])
def test_base64_rows_hold_the_little_endian_bytes_of_the_dtype(dtype):
    vectors = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32) / 4
    rows = openai.encode_rows(vectors, dtype, as_base64=True)
    numpy_dtype = {"float": "<f4", "int8": np.int8, "binary": np.int8, "uint8": np.uint8, "ubinary": np.uint8}
    decoded = np.array([np.frombuffer(base64.b64decode(row), numpy_dtype[dtype]) for row in rows])
    expected = vectors if dtype == "float" else quantize(vectors, dtype)
    np.testing.assert_array_equal(decoded, expected)
    assert openai.encode_rows(vectors, "base64") == openai.encode_rows(vectors, "float", as_base64=True)


def test_jina_task_prompt_names():
    assert jina.prompt_names("retrieval.query") == ("retrieval.query", "query")
    assert jina.prompt_names("code.passage") == ("code.passage", "document")
    assert jina.prompt_names("text-matching") == ("text-matching",)


@pytest.mark.parametrize("body, is_voyage", [
    (b'{"query": "q", "documents": ["d"], "model": "m", "top_k": null, "truncation": true}', True),
    (b'{"query": "q", "documents": ["d"], "top_k": 2}', True),
    (b'{"query": "q", "documents": ["d"], "truncation": false}', True),
    (b'{"query": "q", "documents": ["d"], "top_n": 2, "truncation": true}', False),  # Cohere/Jina
    (b'{"query": "q", "documents": ["d"], "model": "m"}', False),
    (b"[1, 2]", False),
    (b"not json", False),
])
def test_voyage_rerank_bodies_are_told_apart_by_their_fields(body, is_voyage):
    assert voyage.is_rerank_body(body) is is_voyage


def test_voyage_rerank_response_shape():
    body = msgspec.json.decode(voyage.to_rerank_response([(1, 0.9), (0, 0.2)], ["a", "b"],
                                                         return_documents=True, model="m", tokens=7))
    assert body == {"object": "list", "model": "m", "usage": {"total_tokens": 7},
                    "data": [{"index": 1, "relevance_score": 0.9, "document": "b"},
                             {"index": 0, "relevance_score": 0.2, "document": "a"}]}


def test_errors_of_the_embeddings_route_carry_detail():
    body = openai_dialects.error_body(InvalidRequest("bad", param="input"))
    assert body["detail"] == "bad" and body["error"]["message"] == "bad" and body["error"]["param"] == "input"
    assert ollama.error_body(InvalidRequest("bad")) == {"error": "bad"}


def test_ollama_names_options_and_dimensions():
    assert ollama.strip_latest("m:latest") == "m" and ollama.strip_latest("m") is None
    assert ollama_models.tagged("org/m") == "org/m:latest" and ollama_models.tagged("m:v1") == "m:v1"
    assert ollama.inputs("") == [] and ollama.inputs(None) == [] and ollama.inputs("a") == ["a"]
    assert ollama.num_ctx(None) is None and ollama.num_ctx({"num_ctx": 8, "temperature": 0}) == 8
    for bad in ({"num_ctx": 0}, {"num_ctx": "8"}, {"num_ctx": True}):
        with pytest.raises(InvalidRequest):
            ollama.num_ctx(bad)
    sizes = [ollama.dimensions(d, 384) for d in (None, 0, 1, 383, 384, 999)]
    assert sizes == [None, None, 1, 383, None, None]
    with pytest.raises(InvalidRequest):
        ollama.dimensions(-1, 384)


def test_ollama_model_facts():
    config = ModelConfig(name="m", source="org/m", revision="abc")
    assert ollama_models.digest(config) == ollama_models.digest(ModelConfig(name="m", source="org/m",
                                                                            revision="abc", aliases=["x"]))
    assert ollama_models.digest(config) != ollama_models.digest(ModelConfig(name="m", source="org/m"))
    assert len(ollama_models.digest(config)) == 64
    assert [ollama_models.parameter_size(p) for p in (0, 512, 22_713_216, 4_020_000_000)] == \
        ["", "512", "22.7M", "4.0B"]
    spec = ModelSpec(name="m", task="embed", max_tokens=256, dim=384, engine="mlx", device="gpu",
                     dtype="bfloat16", quantization="q4", architecture="qwen3", parameters=1000,
                     modalities=("text", "image"))
    details = ollama_models.details(spec)
    assert (details.family, details.quantization_level, details.context_length) == ("qwen3", "Q4", 256)
    assert ollama_models.size_bytes(spec) == 500
    assert ollama_models.capabilities(spec, "embed") == ["embedding", "vision"]
    assert ollama_models.capabilities(None, "rerank") == ["rerank"]
    shown = ollama_models.show("m", config, spec, 0)
    assert shown.model_info["qwen3.context_length"] == 256 and shown.modified_at == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("pooling", ["cls", "last"])
def test_late_chunking_needs_a_mean_pooled_model(pooling):
    spec = ModelSpec(name="m", task="embed", max_tokens=8, dim=8, engine="torch", device="cpu",
                     pooling=pooling)
    served = ServedModel(ModelConfig(name="m"), "torch", state="ready", engine=SimpleNamespace(spec=spec),
                         runner=SimpleNamespace())
    async def use(name):  # Registry.use: the model, loaded
        return served

    registry = SimpleNamespace(settings=None, get=lambda name: served, use=use)
    with pytest.raises(InvalidRequest) as info:
        asyncio.run(embed_late_chunked(registry, "m", ["a", "b"]))
    assert info.value.param == "late_chunking" and pooling in info.value.message
