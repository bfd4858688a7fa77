"""The embedding cache on the real server and model: hits through the official openai SDK, answers equal to an
uncached server's byte for byte in every encoding, a key that follows prompts and truncation, and
``x-cache-hits`` on every embedding route."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from compat_tests.conftest import DEFAULT_ALIAS, DEFAULT_MODEL
from compat_tests.server import RunningServer, run_server

QUERY_PROMPT = "query: "
CONFIG = f"""
[[models]]
name = "{DEFAULT_MODEL}"
aliases = ["{DEFAULT_ALIAS}"]
query_prompt = "{QUERY_PROMPT}"
"""
LONG_TEXT = " ".join(f"word{i}" for i in range(400))  # past MiniLM's 256 tokens: truncation matters


def texts(tag: str, n: int = 5) -> list[str]:
    """Inputs no other test of the module sends (every test starts from an empty cache for them)."""
    return [f"{tag} text number {i}: the cache keeps what the model computed" for i in range(n)]


def start(workdir: Path, **env: str):
    config = workdir / "gateway.toml"
    config.write_text(CONFIG)
    return run_server(workdir, env=env, args=["--config", str(config)])


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> RunningServer:
    with start(tmp_path_factory.mktemp("cached")) as running:
        yield running


@pytest.fixture(scope="module")
def uncached(tmp_path_factory) -> RunningServer:
    with start(tmp_path_factory.mktemp("uncached"), GATEWAY_CACHE_MAX_BYTES="0") as running:
        yield running


def post(server: RunningServer, path: str, body: dict) -> httpx.Response:
    response = httpx.post(f"{server.url}{path}", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response


def without_id(body: bytes) -> bytes:
    """The response body without its random id (``"id":"embd-..."``, Cohere's ``"id":"<uuid>"``)."""
    return re.sub(rb'"id":"[^"]*"', b'"id":""', body)


def hits(response) -> int:
    return int(response.headers["x-cache-hits"])


def test_a_repeated_request_is_served_from_the_cache_through_the_openai_sdk(cached):
    client = openai.OpenAI(base_url=cached.openai_base, api_key="unused", max_retries=0)
    inputs = texts("sdk")
    first = client.embeddings.with_raw_response.create(model=DEFAULT_MODEL, input=inputs)
    again = client.embeddings.with_raw_response.create(model=DEFAULT_MODEL, input=inputs)
    assert first.headers["x-cache-hits"] == "0" and again.headers["x-cache-hits"] == str(len(inputs))
    assert without_id(again.content) == without_id(first.content)
    parsed_first, parsed_again = first.parse(), again.parse()
    assert parsed_again.usage.prompt_tokens == parsed_first.usage.prompt_tokens > len(inputs)
    partly = client.embeddings.with_raw_response.create(model=DEFAULT_MODEL,
                                                        input=[inputs[0], "sdk: a new one"])
    assert partly.headers["x-cache-hits"] == "1"
    assert partly.parse().data[0].embedding == parsed_first.data[0].embedding


OPENAI_VARIANTS = [
    {"encoding_format": "float"}, {"encoding_format": "base64"}, {"dimensions": 64},
    {"dimensions": 100, "encoding_format": "base64"}, {"encoding_format": "int8"},
    {"encoding_format": "binary"}, {"output_dtype": "ubinary", "output_dimension": 128},
]


def test_cached_answers_equal_uncached_ones_in_every_encoding(cached, uncached):
    inputs = texts("encodings")
    post(cached, "/v1/embeddings", {"model": DEFAULT_MODEL, "input": inputs})  # fills the cache
    for variant in OPENAI_VARIANTS:
        body = {"model": DEFAULT_MODEL, "input": inputs, **variant}
        from_cache, computed = post(cached, "/v1/embeddings", body), post(uncached, "/v1/embeddings", body)
        assert hits(from_cache) == len(inputs) and hits(computed) == 0, variant
        assert without_id(from_cache.content) == without_id(computed.content), variant
    cohere = {"model": DEFAULT_MODEL, "texts": inputs, "input_type": "search_document",
              "output_dimension": 128,
              "embedding_types": ["float", "int8", "uint8", "binary", "ubinary", "base64"]}
    tei = {"inputs": inputs, "normalize": False}
    for path, body in [("/v2/embed", cohere), ("/embed", tei)]:
        from_cache, computed = post(cached, path, body), post(uncached, path, body)
        assert hits(from_cache) == len(inputs), path
        assert without_id(from_cache.content) == without_id(computed.content), path


def test_a_prompt_truncation_side_or_token_limit_is_another_key(cached):
    def openai_hits(**fields) -> int:
        return hits(post(cached, "/v1/embeddings", {"model": DEFAULT_MODEL, "input": [LONG_TEXT], **fields}))

    def cohere_hits(truncate: str) -> int:
        body = {"model": DEFAULT_MODEL, "texts": [LONG_TEXT], "truncate": truncate}
        return hits(post(cached, "/v1/embed", body))

    def ollama_hits(num_ctx: int) -> int:
        body = {"model": DEFAULT_MODEL, "input": LONG_TEXT, "options": {"num_ctx": num_ctx}}
        return hits(post(cached, "/api/embed", body))

    assert (openai_hits(), openai_hits()) == (0, 1)
    assert (openai_hits(input_type="query"), openai_hits(input_type="query")) == (0, 1)  # the query prompt
    assert cohere_hits("END") == 1  # Cohere's default cut keeps the start, as the OpenAI route did
    assert (cohere_hits("START"), cohere_hits("START")) == (0, 1)  # keeps the end: other tokens
    assert (ollama_hits(16), ollama_hits(16), ollama_hits(32)) == (0, 1, 0)
    # an input that short fits anyway: the same token ids, so the same vector
    short = {"model": DEFAULT_MODEL, "input": "tiny", "options": {"num_ctx": 64}}
    post(cached, "/api/embed", {"model": DEFAULT_MODEL, "input": "tiny"})
    assert hits(post(cached, "/api/embed", short)) == 1


def test_every_embedding_route_says_how_many_inputs_the_cache_served(cached):
    inputs = texts("routes", 2)
    routes = [
        ("/v1/embeddings", {"model": DEFAULT_MODEL, "input": inputs}, 2),
        ("/v1/embeddings", {"model": DEFAULT_MODEL, "input": inputs, "task": "retrieval.passage"}, 2),  # Jina
        ("/v1/embeddings", {"model": DEFAULT_MODEL, "input": inputs, "input_type": "document"}, 2),  # Voyage
        ("/v1/embed", {"model": DEFAULT_MODEL, "texts": inputs}, 2),
        ("/v2/embed", {"model": DEFAULT_MODEL, "texts": inputs, "input_type": "search_query",
                       "embedding_types": ["float"]}, 2),
        ("/embed", {"inputs": inputs}, 2),
        ("/api/embed", {"model": DEFAULT_MODEL, "input": inputs}, 2),
        ("/api/embeddings", {"model": DEFAULT_MODEL, "prompt": inputs[0]}, 1),
        ("/v1/multimodalembeddings", {"model": DEFAULT_MODEL, "inputs": [
            {"content": [{"type": "text", "text": text}]} for text in inputs]}, 2),
    ]
    for path, body, n in routes:
        assert hits(post(cached, path, body)) in (0, n), path  # 0 unless an earlier route filled the key
        assert hits(post(cached, path, body)) == n, path
    chunked = {"model": DEFAULT_MODEL, "input": inputs, "late_chunking": True}  # never cached
    assert hits(post(cached, "/v1/embeddings", chunked)) == 0 == hits(post(cached, "/v1/embeddings", chunked))


def model_inputs(server: RunningServer) -> float:
    """Inputs the server sent to its model so far (``gateway_inputs_total`` over routes)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return sum(float(v) for v in re.findall(r'^gateway_inputs_total\{[^}]*\} (\S+)$', text, re.M))


def test_repeated_inputs_of_one_request_are_embedded_once(cached, uncached):
    inputs = ["dedupe: the same chunk", "dedupe: another chunk", "dedupe: the same chunk"]
    before = model_inputs(cached)
    body = {"model": DEFAULT_MODEL, "input": inputs, "encoding_format": "base64"}
    response = post(cached, "/v1/embeddings", body)
    assert model_inputs(cached) - before == 2 and hits(response) == 0
    rows = [np.frombuffer(base64.b64decode(row["embedding"]), np.float32) for row in response.json()["data"]]
    assert rows[0].tobytes() == rows[2].tobytes() and rows[0].tobytes() != rows[1].tobytes()
    reference = post(uncached, "/v1/embeddings", {"model": DEFAULT_MODEL, "input": inputs}).json()
    assert response.json()["usage"] == reference["usage"]  # every input's tokens count
    np.testing.assert_allclose(np.stack(rows), [row["embedding"] for row in reference["data"]], atol=1e-6)


def test_health_and_metrics_describe_the_cache(cached, uncached):
    assert httpx.get(f"{cached.url}/health").json()["cache"]["backend"] == "memory"
    assert httpx.get(f"{uncached.url}/health").json()["cache"] == {"backend": "off", "ok": True}
    metrics = httpx.get(f"{cached.url}/metrics").text
    for name in ("gateway_cache_hits_total", "gateway_cache_misses_total", "gateway_cache_evictions_total",
                 "gateway_cache_bytes"):
        value = re.search(rf'^{name}\{{model="{re.escape(DEFAULT_MODEL)}"\}} (\S+)$', metrics, re.M)
        assert value, name
    held = re.search(r'^gateway_cache_bytes\{[^}]*\} (\S+)$', metrics, re.M).group(1)
    assert float(held) > 0
