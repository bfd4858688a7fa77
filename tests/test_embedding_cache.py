"""The embedding cache's pieces: key composition, the byte-bounded LRU, dedupe and scopes (fake runner)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.config import ModelConfig, Settings
from gateway.engines import ModelSpec, Tokens
from gateway.serving import request_context
from gateway.serving.embedding_cache import (
    ENTRY_OVERHEAD_BYTES,
    CacheStats,
    MemoryStore,
    build_cache,
    embed_cached,
    input_key,
    model_fingerprint,
)
from gateway.serving.registry import ServedModel

DIM = 4


def served(cache_max_bytes: int = 1 << 20, scope: str = "key", **config) -> ServedModel:
    spec = ModelSpec(name="m", task="embed", max_tokens=8, dim=DIM, engine="torch", device="cpu")
    settings = Settings(model="m", cache_max_bytes=cache_max_bytes, cache_scope=scope)
    return ServedModel(ModelConfig(**{"name": "m", **config}), "torch", state="ready",
                       engine=SimpleNamespace(spec=spec), runner=SimpleNamespace(),
                       cache=build_cache(settings))


class CountingRunner:
    """Embeds ids as a vector of their sum (a distinct row per distinct input), recording each call."""

    def __init__(self) -> None:
        self.calls: list[list[list[int]]] = []

    async def __call__(self, tokens: list[Tokens]) -> np.ndarray:
        self.calls.append([t.ids for t in tokens])
        return np.array([[sum(t.ids), len(t.ids), 1.5, -2.0] for t in tokens], np.float32)


def embed(model: ServedModel, runner: CountingRunner, ids: list[list[int]], api_key: str | None = None):
    async def request():
        info = request_context.start("test")
        info.api_key = api_key
        vectors = await embed_cached(model, [Tokens(i) for i in ids], runner)
        return vectors, info.cache_hits

    return asyncio.run(request())


def test_the_key_follows_the_token_ids_segments_and_images():
    base = input_key(b"m", Tokens([101, 7, 102]))
    assert base == input_key(b"m", Tokens([101, 7, 102]))
    assert base != input_key(b"m", Tokens([101, 7]))  # truncated or another prompt: other ids
    assert base != input_key(b"other model", Tokens([101, 7, 102]))
    assert base != input_key(b"m", Tokens([101, 7, 102], type_ids=[0, 0, 1]))
    pixels = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    with_image = input_key(b"m", Tokens([101, 7, 102], images=[pixels]))
    assert with_image != base
    assert with_image == input_key(b"m", Tokens([101, 7, 102], images=[pixels.copy()]))
    changed = pixels.copy()
    changed[0, 0, 0] += 1
    assert with_image != input_key(b"m", Tokens([101, 7, 102], images=[changed]))
    assert with_image != input_key(b"m", Tokens([101, 7, 102], images=[pixels.astype(np.float64)]))


def test_torch_image_arrays_and_dicts_have_digests():
    torch = pytest.importorskip("torch")
    grid = {"pixel_values": torch.ones(2, 3, dtype=torch.bfloat16), "grid": (1, 2, 2)}
    key = input_key(b"m", Tokens([1], images=grid))
    assert key == input_key(b"m", Tokens([1], images={"grid": (1, 2, 2), "pixel_values": torch.ones(2, 3,
                                                                         dtype=torch.bfloat16)}))
    assert key != input_key(b"m", Tokens([1], images={**grid, "grid": (1, 2, 3)}))


@pytest.mark.parametrize("change", [{"revision": "v2"}, {"source": "elsewhere"}, {"name": "n"}])
def test_the_fingerprint_covers_the_model_and_its_revision(change):
    assert model_fingerprint(served()) != model_fingerprint(served(**change))


@pytest.mark.parametrize("field, value", [("dtype", "float16"), ("pooling", "cls"), ("normalize", True),
                                          ("device", "cuda"), ("quantization", "q8"), ("dim", 8)])
def test_the_fingerprint_covers_the_engine_output_settings(field, value):
    one, other = served(), served()
    setattr(other.engine.spec, field, value)
    assert model_fingerprint(one) != model_fingerprint(other)


def test_the_lru_stays_within_its_bytes_and_evicts_the_least_recently_used():
    entry = DIM * 4 + ENTRY_OVERHEAD_BYTES
    stats = CacheStats()
    store = MemoryStore(3 * entry, stats)
    rows = {bytes([i]): np.full(DIM, i, np.float32) for i in range(4)}

    async def scenario():
        await store.put_many(list(rows.items())[:3])
        await store.get_many([b"\x00"], DIM)  # 0 becomes the most recently used
        await store.put_many([(b"\x03", rows[b"\x03"])])
        return await store.get_many(list(rows), DIM)

    found = asyncio.run(scenario())
    assert [row is not None for row in found] == [True, False, True, True]
    assert stats.evictions == 1 and stats.bytes == 3 * entry <= store.max_bytes


def test_a_zero_size_turns_the_cache_off():
    model = served(cache_max_bytes=0)
    assert model.cache is None
    runner = CountingRunner()
    embed(model, runner, [[1, 2]])
    _, hits = embed(model, runner, [[1, 2], [1, 2]])
    assert hits == 0 and runner.calls == [[[1, 2]], [[1, 2], [1, 2]]]  # off: no dedupe either


def test_repeated_inputs_run_once_and_cached_ones_not_at_all():
    model, runner = served(), CountingRunner()
    first, hits = embed(model, runner, [[1, 2], [3], [1, 2], [3], [5]])
    assert hits == 0 and runner.calls == [[[1, 2], [3], [5]]]
    np.testing.assert_array_equal(first[0], first[2])
    second, hits = embed(model, runner, [[5], [9], [1, 2], [9]])
    assert hits == 2 and runner.calls[1] == [[9]]
    assert second.tobytes() == np.stack([first[4], second[1], first[0], second[1]]).tobytes()
    assert (model.cache.stats.hits, model.cache.stats.misses) == (2, 7)


def test_each_api_key_has_its_own_scope_unless_shared():
    model, runner = served(), CountingRunner()
    embed(model, runner, [[4, 2]], api_key="team-a")
    assert embed(model, runner, [[4, 2]], api_key="team-b")[1] == 0
    assert embed(model, runner, [[4, 2]], api_key="team-a")[1] == 1
    shared = served(scope="shared")
    embed(shared, runner, [[4, 2]], api_key="team-a")
    assert embed(shared, runner, [[4, 2]], api_key="team-b")[1] == 1


def test_a_failed_run_stores_nothing():
    model = served()

    async def failing(tokens):
        raise RuntimeError("engine down")

    async def request():
        request_context.start("x")
        await embed_cached(model, [Tokens([1])], failing)

    with pytest.raises(RuntimeError):
        asyncio.run(request())
    runner = CountingRunner()
    assert embed(model, runner, [[1]])[1] == 0 and runner.calls == [[[1]]]
