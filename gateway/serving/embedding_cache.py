"""The embedding cache: engine vectors of inputs already embedded, looked up after tokenization.

A key covers everything that changes a vector (``input_key``): the model (served name, source, revision),
the engine settings that shape its output (engine, device, dtype, quantization, pooling, normalization,
native size), the exact token ids after prompts and truncation (so the same text under another prompt,
truncation side or token limit is another key), segment ids, a digest of an input's image arrays, and
the cache scope (the API key's name under ``cache_scope = "key"``). The value is the engine's
full-precision float32 row at the native size, before normalization and Matryoshka truncation, so
``dimensions``, int8/binary and base64 answers are derived from it exactly as from a fresh forward pass.

Ragged outputs (sparse, multi-vector) are cached the same way, under keys that name the output kind, as
one packed float32 array per row (``pack`` / ``unpack``): a store sees rows of varying size (``dim`` 0).

``embed_cached`` is the one entry point: it folds repeated inputs of a request into one, serves what
the store holds, runs the rest through the model's runner, stores them, and records the request's
hits (``x-cache-hits``). Stores: ``MemoryStore`` (a per-model LRU bounded in bytes, cachetools) or
``RedisStore`` (``gateway.serving.redis_cache``, shared by replicas).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from cachetools import LRUCache

from gateway.config import Settings
from gateway.engines import RAGGED_OUTPUTS, SparseVector, Tokens
from gateway.serving import request_context

if TYPE_CHECKING:
    from gateway.serving.registry import ServedModel

ENTRY_OVERHEAD_BYTES = 100  # the key (20 bytes), the array object and the LRU's links, per entry
OFFLOAD_KEY_TOKENS = 8192  # token ids hashed inline at most (~65 ns each: 0.5 ms)


class Uncacheable(Exception):
    """An input whose image data has no stable digest (an engine type the digest does not know)."""


@dataclass(slots=True)
class CacheStats:
    """Counts of one model's cache (read by ``/metrics`` at scrape time).

    Attributes:
        hits: inputs served from the cache. misses: cacheable inputs it did not hold.
        evictions: entries the LRU dropped to stay within its bytes. bytes: held now (memory store).
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes: int = 0


class Store(Protocol):
    """Where vectors live: ``get_many`` -> a row or None per key; ``put_many`` stores rows. (``/health``
    reads the cache's state from the registry: ``Registry.cache_health``.)"""

    async def get_many(self, keys: list[bytes], dim: int) -> list[np.ndarray | None]: ...

    async def put_many(self, entries: list[tuple[bytes, np.ndarray]]) -> None: ...


class _ByteLRU(LRUCache):
    """cachetools' LRU sized in bytes, counting what it evicts."""

    def __init__(self, max_bytes: int, stats: CacheStats) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=lambda row: row.nbytes + ENTRY_OVERHEAD_BYTES)
        self.stats = stats

    def popitem(self):
        item = super().popitem()
        self.stats.evictions += 1
        return item


class MemoryStore:
    """One model's in-memory LRU of float32 rows, at most ``max_bytes`` (rows plus their overhead).

    Used only from the event loop, so it needs no lock. A row larger than the whole budget is not kept.
    """

    def __init__(self, max_bytes: int, stats: CacheStats) -> None:
        self.max_bytes = max_bytes
        self.stats = stats
        self._lru = _ByteLRU(max_bytes, stats)

    async def get_many(self, keys: list[bytes], dim: int) -> list[np.ndarray | None]:
        return [self._lru.get(key) for key in keys]

    async def put_many(self, entries: list[tuple[bytes, np.ndarray]]) -> None:
        for key, row in entries:
            try:
                self._lru[key] = row
            except ValueError:  # larger than the whole cache
                pass
        self.stats.bytes = self._lru.currsize


@dataclass(eq=False)
class ModelCache:
    """One served model's cache: its store, its counts and the scope rule."""

    store: Store
    scope: str  # "key" | "shared"
    stats: CacheStats = field(default_factory=CacheStats)


def build_cache(settings: Settings, redis_store_factory=None) -> ModelCache | None:
    """The cache one model gets under ``settings``: None when ``cache_max_bytes`` is 0 (and no Redis).

    ``redis_store_factory(stats)`` makes a model's view of the shared Redis connection (``cache_redis_url``).
    """
    stats = CacheStats()
    if settings.cache_redis_url and redis_store_factory is not None:
        return ModelCache(redis_store_factory(stats), settings.cache_scope, stats)
    if settings.cache_max_bytes <= 0:
        return None
    return ModelCache(MemoryStore(settings.cache_max_bytes, stats), settings.cache_scope, stats)


def model_fingerprint(served: ServedModel, output: str = "dense") -> bytes:
    """What identifies a model's vectors: served name, source, revision, the engine's output settings and
    the output kind (``dense``; a model with several outputs, e.g. BGE-M3, keeps each apart)."""
    spec = getattr(served.engine, "spec", None)
    config = served.config
    parts = [output, config.name, config.source, config.revision, served.engine_name]
    parts += [getattr(spec, name, None) for name in
              ("engine", "device", "dtype", "quantization", "pooling", "normalize", "dim")]
    return repr(parts).encode()


def scope_of(cache: ModelCache) -> str:
    """The current request's scope: its API key's name under ``key`` (none configured: one scope)."""
    if cache.scope == "shared":
        return ""
    info = request_context.current()
    return (info.api_key or "") if info else ""


def input_key(prefix: bytes, tokens: Tokens) -> bytes:
    """The 20-byte key of one prepared input under ``prefix`` (model fingerprint and scope).

    Raises:
        Uncacheable: its image data holds a type ``_feed`` cannot digest.
    """
    digest = hashlib.blake2b(prefix, digest_size=20)
    digest.update(b"\0ids")
    digest.update(np.asarray(tokens.ids, dtype=np.int64).tobytes())
    if tokens.task is not None:  # the side of an asymmetric model
        digest.update(f"\0task{tokens.task}".encode())
    if tokens.type_ids is not None:
        digest.update(b"\0type")
        digest.update(np.asarray(tokens.type_ids, dtype=np.int64).tobytes())
    if tokens.images is not None:
        digest.update(f"\0img{tokens.image_tokens},{tokens.image_ids}".encode())
        _feed(digest, tokens.images)
    return digest.digest()


def _feed(digest: Any, value: Any) -> None:
    """Hash an engine's image data: arrays (numpy, torch) by dtype, shape and bytes, containers in order."""
    if isinstance(value, np.ndarray):
        digest.update(f"nd{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        import torch

        tensor = value.detach().cpu().contiguous()
        digest.update(f"pt{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, (list, tuple)):
        digest.update(f"[{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(f"{{{len(value)}".encode())
        for name in sorted(value, key=repr):
            digest.update(repr(name).encode())
            _feed(digest, value[name])
    elif value is None or isinstance(value, (bool, int, float, str, bytes)):
        digest.update(repr(value).encode())
    else:
        raise Uncacheable(type(value).__name__)


def input_keys(prefix: bytes, tokens: list[Tokens]) -> list[bytes | None]:
    """``input_key`` of each input; None for an uncacheable one."""
    keys: list[bytes | None] = []
    for item in tokens:
        try:
            keys.append(input_key(prefix, item))
        except Uncacheable:
            keys.append(None)
    return keys


def pack(row, output: str) -> np.ndarray:
    """One engine row as the 1-D float32 array a store keeps: a dense vector as it is, a ``SparseVector``
    as its int32 indices' bytes then its values, a ``(tokens, dim)`` array flattened."""
    if output == "sparse":
        return np.concatenate([row.indices.astype(np.int32).view(np.float32), row.values.astype(np.float32)])
    return np.ascontiguousarray(row, dtype=np.float32).reshape(-1)


def unpack(value: np.ndarray, output: str, dim: int):
    """``pack``'s inverse (``dim``: the model's vector size, for multi-vector rows)."""
    if output == "sparse":
        half = len(value) // 2
        return SparseVector(value[:half].view(np.int32).copy(), value[half:].copy())
    if output == "multi_vector":
        return value.reshape(-1, dim).copy()
    return value


async def embed_cached(served: ServedModel, tokens: list[Tokens], run, output: str = "dense"):
    """Engine rows of ``tokens`` for ``output``, through the model's cache when it has one: ``(n, dim)``
    float32 for ``dense``, a list of ``n`` rows for the ragged outputs (``engines.RAGGED_OUTPUTS``).

    ``run(tokens)`` awaits the runner (under the request's deadline) for the inputs the cache lacks;
    repeated inputs of the request go to it once. Records the request's hits (``x-cache-hits``), 0
    without a cache. A store that fails is skipped (``RedisStore`` reports it in ``/health``).

    Raises:
        Whatever ``run`` raises (Overloaded, RequestTimeout, EngineFailure...).
    """
    cache: ModelCache | None = getattr(served, "cache", None)
    if cache is None:
        request_context.count_cache_hits(0)
        return await run(tokens)
    dim = served.engine.spec.dim
    ragged = output in RAGGED_OUTPUTS
    prefix = model_fingerprint(served, output) + b"\0scope" + scope_of(cache).encode()
    # image arrays are megabytes, and many tokens take long too (2,048 inputs of 150: 20 ms): hash those
    # off the event loop; a few short texts stay inline (a thread hop costs ~0.1 ms)
    big = any(t.images is not None for t in tokens) or sum(len(t.ids) for t in tokens) > OFFLOAD_KEY_TOKENS
    keys = await asyncio.to_thread(input_keys, prefix, tokens) if big else input_keys(prefix, tokens)
    unique = list(dict.fromkeys(key for key in keys if key is not None))
    found = dict(zip(unique, await cache.store.get_many(unique, 0 if ragged else dim), strict=True))
    # one forward-pass slot per distinct missing key, and one per uncacheable input
    slot_of: dict[bytes, int] = {}
    to_run: list[Tokens] = []
    slots: list[int | None] = []
    hits = 0
    for key, item in zip(keys, tokens, strict=True):
        if key is not None and found.get(key) is not None:
            hits += 1
            slots.append(None)
            continue
        if key is None or key not in slot_of:
            if key is not None:
                slot_of[key] = len(to_run)
            slots.append(len(to_run))
            to_run.append(item)
        else:
            slots.append(slot_of[key])
    cache.stats.hits += hits
    cache.stats.misses += sum(1 for key in keys if key is not None) - hits
    raw = await run(to_run) if to_run else ([] if ragged else np.zeros((0, dim), np.float32))
    out = [None] * len(tokens) if ragged else np.empty((len(tokens), dim), np.float32)
    for i, (key, slot) in enumerate(zip(keys, slots, strict=True)):
        out[i] = unpack(found[key], output, dim) if slot is None else raw[slot]
    fresh = [(key, pack(raw[slot], output)) for key, slot in slot_of.items()]
    if fresh:
        await cache.store.put_many(fresh)
    request_context.count_cache_hits(hits)
    return out
