"""Load 4 of ``gateway bench``: re-embedding a corpus that was embedded once (the embedding cache).

The same requests are sent twice to a server whose cache is on: the first pass embeds every text (each
text tagged with this run's id, so a cache that already holds the corpus from an earlier run cannot
make the first pass cheap), the second pass is served from the cache. Reported: both passes' wall
time, their ratio (the issue's goal: at least 20x), the second pass's ``x-cache-hits``, and whether
the vectors of the two passes are identical byte for byte (base64 float32 rows).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx
import msgspec

from gateway.bench.corpus import Corpus

TEXTS = 2048
QUICK_TEXTS = 128
PER_REQUEST = 64
CONCURRENCY = 4
TARGET_RATIO = 20.0


@dataclass(frozen=True)
class CacheLoadResult:
    """Both passes of load 4.

    Attributes:
        texts / requests: corpus size and how many requests carried it (per pass).
        first_s / second_s: wall time of each pass, in seconds.
        hits: ``x-cache-hits`` summed over the second pass (``texts`` when every text was served).
        first_hits: the same over the first pass (texts whose first 256 tokens another text shares).
        identical: every row of the second pass equals the first pass's, byte for byte.
    """

    texts: int
    requests: int
    first_s: float
    second_s: float
    hits: int
    identical: bool
    first_hits: int = 0

    @property
    def ratio(self) -> float:
        return self.first_s / self.second_s if self.second_s > 0 else float("inf")


def cache_bodies(corpus: Corpus, model: str, quick: bool) -> list[bytes]:
    """The corpus (distinct mixed-length texts, tagged with a fresh run id) as base64 embedding bodies."""
    run = uuid.uuid4().hex[:8]
    texts = [f"[{run}] {text}" for text in corpus.mixed[:QUICK_TEXTS if quick else TEXTS]]
    return [msgspec.json.encode({"model": model, "input": texts[i:i + PER_REQUEST],
                                 "encoding_format": "base64"}) for i in range(0, len(texts), PER_REQUEST)]


async def _pass(client: httpx.AsyncClient, url: str,
                bodies: list[bytes]) -> tuple[float, list[list[str]], int]:
    """Send every body (``CONCURRENCY`` at once); returns wall seconds, each body's rows, hits summed."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(body: bytes) -> tuple[list[str], int]:
        async with gate:
            response = await client.post(f"{url}/v1/embeddings", content=body,
                                         headers={"content-type": "application/json"})
        response.raise_for_status()
        rows = [row["embedding"] for row in msgspec.json.decode(response.content)["data"]]
        return rows, int(response.headers.get("x-cache-hits", 0))

    start = time.perf_counter()
    answers = await asyncio.gather(*(one(body) for body in bodies))
    return time.perf_counter() - start, [rows for rows, _ in answers], sum(hits for _, hits in answers)


def run_cache_load(url: str, corpus: Corpus, model: str, quick: bool = False) -> CacheLoadResult:
    """Embed the corpus, then again; see the module docstring.

    Raises:
        httpx.HTTPError: a request failed.
    """
    bodies = cache_bodies(corpus, model, quick)

    async def both() -> CacheLoadResult:
        async with httpx.AsyncClient(timeout=600) as client:
            await client.post(f"{url}/v1/embeddings", json={"model": model, "input": "warm up"})
            first_s, first, first_hits = await _pass(client, url, bodies)
            second_s, second, hits = await _pass(client, url, bodies)
        texts = sum(len(rows) for rows in first)
        return CacheLoadResult(texts, len(bodies), first_s, second_s, hits, first == second, first_hits)

    return asyncio.run(both())


def format_cache_load(result: CacheLoadResult) -> str:
    """The report's lines for load 4."""
    verdict = "met" if result.ratio >= TARGET_RATIO and result.identical else "MISSED"
    return "\n".join([
        "Load 4, re-embedding a corpus (embedding cache on):", "",
        f"- {result.texts} distinct texts in {result.requests} requests of {PER_REQUEST} (base64), "
        f"concurrency {CONCURRENCY}",
        f"- first pass {result.first_s:.3f} s, second pass {result.second_s:.3f} s: "
        f"{result.ratio:.1f}x faster (target >= {TARGET_RATIO:g}x: {verdict})",
        f"- x-cache-hits: first pass {result.first_hits}, second pass {result.hits} of {result.texts}; "
        f"vectors identical to the first pass: {'yes' if result.identical else 'NO'}",
    ])
