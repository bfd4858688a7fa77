"""JSON null in any optional field of any dialect's body means absent: the answer equals the answer to the
same body without those fields (as LiteLLM and OpenAPI-generated clients send them)."""

from __future__ import annotations

import math

import msgspec
import pytest

from compat_tests.conftest import DEFAULT_MODEL
from compat_tests.dialects import post
from gateway.protocol import cohere_embed, cohere_rerank, ollama, openai, tei, tei_rerank, voyage
from gateway.protocol.ollama_models import ShowRequest

QUERY = {"query": "capital of France?", "documents": ["Paris is the capital of France.", "Bananas."]}
BODIES = {
    "openai": ("/v1/embeddings", openai.EmbeddingRequest, {"model": DEFAULT_MODEL, "input": ["a", "b"]}),
    "cohere v1 embed": ("/v1/embed", cohere_embed.EmbedRequest, {"texts": ["a", "b"]}),
    "cohere v2 embed": ("/v2/embed", cohere_embed.EmbedRequestV2, {"model": DEFAULT_MODEL, "texts": ["a"]}),
    "cohere rerank": ("/v2/rerank", cohere_rerank.RerankRequest, QUERY),
    "voyage rerank": ("/v1/rerank", voyage.RerankRequest, {**QUERY, "top_k": 1}),
    "tei embed": ("/embed", tei.EmbedRequest, {"inputs": ["a", "b"]}),
    "tei rerank": ("/rerank", tei_rerank.TeiRerankRequest, {"query": "q", "texts": ["a", "b"]}),
    "tei tokenize": ("/tokenize", tei.TokenizeRequest, {"inputs": "a b"}),
    "tei decode": ("/decode", tei.DecodeRequest, {"ids": [101, 1037, 102]}),
    "ollama embed": ("/api/embed", ollama.EmbedRequest, {"model": DEFAULT_MODEL, "input": ["a", "b"]}),
    "ollama legacy": ("/api/embeddings", ollama.EmbeddingsRequest, {"model": DEFAULT_MODEL, "prompt": "a"}),
    "ollama rerank": ("/api/rerank", ollama.RerankRequest, {"model": DEFAULT_MODEL, **QUERY}),
    "ollama show": ("/api/show", ShowRequest, {"model": DEFAULT_MODEL}),
}
VOLATILE = {"id", "total_duration", "load_duration"}


def optional_fields(struct: type[msgspec.Struct]) -> list[str]:
    fields, defaults = struct.__struct_fields__, struct.__struct_defaults__
    return list(fields[len(fields) - len(defaults):])


def same(a, b) -> bool:
    """Equal JSON, floats to 1e-5 (two forward passes may split the cores differently)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a if k not in VOLATILE)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    return a == b


@pytest.mark.parametrize("path, struct, body", BODIES.values(), ids=BODIES.keys())
def test_null_means_absent(server, path, struct, body):
    nulls = {name: None for name in optional_fields(struct) if name not in body}
    assert nulls, "the body has optional fields to null"
    plain, nulled = post(server, path, body), post(server, path, {**body, **nulls})
    assert plain.status_code == nulled.status_code == 200, nulled.text
    assert same(plain.json(), nulled.json())
