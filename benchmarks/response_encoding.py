"""Measure the numpy -> JSON path of a large ``float`` embeddings response (OpenAI shape).

Candidates, each producing the full ``{"object": "list", "data": [...], "model", "usage"}`` body:

- ``tolist+msgspec``: ``vectors.tolist()`` (float32 widened to Python floats) and ``msgspec.json.encode``;
  every value is printed with the 17 digits a float64 needs, e.g. ``0.012345678918063641``.
- ``msgspec enc_hook``: msgspec calling a hook for each ``np.ndarray`` row (the hook can only return
  ``tolist()``, so it measures the hook overhead).
- ``orjson numpy``: ``orjson.dumps(..., option=OPT_SERIALIZE_NUMPY)`` on the float32 rows, printing each
  value as the shortest decimal that round-trips to the same float32 (``0.012345679``), as OpenAI does.
- ``orjson rows in msgspec``: rows encoded by orjson, spliced into the msgspec Struct as ``msgspec.Raw``.

Each body is checked: parsed back, the values equal the float32 vectors exactly once cast to float32.
Run: ``python benchmarks/response_encoding.py [rows] [dim]``.
"""

from __future__ import annotations

import statistics
import sys
import time

import msgspec
import numpy as np
import orjson

from gateway.protocol.openai import EmbeddingData, EmbeddingResponse, EmbeddingUsage


def tolist_msgspec(vectors: np.ndarray) -> bytes:
    rows = vectors.tolist()
    data = [EmbeddingData(i, row) for i, row in enumerate(rows)]
    return msgspec.json.encode(EmbeddingResponse(data, "m", EmbeddingUsage(1, 1)))


def _hook(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise NotImplementedError


class _LooseData(msgspec.Struct):
    index: int
    embedding: object
    object: str = "embedding"


class _LooseResponse(msgspec.Struct):
    data: list[_LooseData]
    model: str
    usage: EmbeddingUsage
    object: str = "list"


def msgspec_enc_hook(vectors: np.ndarray) -> bytes:
    data = [_LooseData(i, row) for i, row in enumerate(vectors)]
    return msgspec.json.encode(_LooseResponse(data, "m", EmbeddingUsage(1, 1)), enc_hook=_hook)


def orjson_numpy(vectors: np.ndarray) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(vectors)]
    body = {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def orjson_rows_in_msgspec(vectors: np.ndarray) -> bytes:
    data = [_LooseData(i, msgspec.Raw(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)))
            for i, row in enumerate(vectors)]
    return msgspec.json.encode(_LooseResponse(data, "m", EmbeddingUsage(1, 1)))


CANDIDATES = {
    "tolist+msgspec": tolist_msgspec,
    "msgspec enc_hook": msgspec_enc_hook,
    "orjson numpy": orjson_numpy,
    "orjson rows in msgspec": orjson_rows_in_msgspec,
}


def check(body: bytes, vectors: np.ndarray) -> None:
    """The body parses and holds exactly the float32 values, in order."""
    parsed = msgspec.json.decode(body)
    rows = np.array([row["embedding"] for row in parsed["data"]], np.float32)
    assert [row["index"] for row in parsed["data"]] == list(range(len(vectors)))
    assert np.array_equal(rows, vectors), "values differ after the float32 round trip"


def measure(func, vectors: np.ndarray, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func(vectors)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(rows: int = 256, dim: int = 384) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    print(f"{rows} x {dim} float32; median of 30 runs")
    print(f"{'candidate':<24} {'ms':>8} {'bytes':>10} {'decode ms':>10}")
    for name, func in CANDIDATES.items():
        body = func(vectors)
        check(body, vectors)
        decode_ms = measure(lambda _, body=body: msgspec.json.decode(body), vectors, 30)
        print(f"{name:<24} {measure(func, vectors, 30):8.2f} {len(body):10d} {decode_ms:10.2f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
