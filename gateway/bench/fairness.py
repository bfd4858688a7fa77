"""Load 5 of ``gateway bench``: one-text requests while other clients keep the queue full of bulk ones.

``BULK_CLIENTS`` clients each send requests of ``BULK_TEXTS`` distinct mixed-length texts, one after
the other; a refused one (429) is sent again after ``BULK_RETRY_S`` (a client that keeps pushing, not one
that honours ``Retry-After``), so the queue stays full. Meanwhile one interactive client sends one short
text per request, one after the other, and its latency is measured. Reported: the interactive p50 / p95
(issue 22's goal: p95 under 1 s, every request answered 200), how many bulk requests were served or
refused, and how fast a refusal came back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import msgspec
import numpy as np

from gateway.bench.client import make_client, post_json
from gateway.bench.corpus import Corpus, cycle

BULK_CLIENTS = 6
BULK_TEXTS = 1024
BULK_RETRY_S = 0.05
TARGET_P95_MS = 1000.0
SETTLE_S = 1.0  # bulk requests queue up this long before the interactive client starts measuring


@dataclass
class FairnessResult:
    """What load 5 measured (latencies in ms).

    Attributes:
        interactive_ms: latency of each interactive request answered 200.
        interactive_status / bulk_status: every answer's status (0: no answer).
        refusal_ms: latency of each bulk request answered 429.
        bulk_texts: texts embedded for the bulk clients.
        elapsed_s: how long the interactive client measured.
    """

    interactive_ms: list[float] = field(default_factory=list)
    interactive_status: Counter = field(default_factory=Counter)
    bulk_status: Counter = field(default_factory=Counter)
    refusal_ms: list[float] = field(default_factory=list)
    bulk_texts: int = 0
    elapsed_s: float = 0.0

    def interactive_percentile(self, percent: float) -> float:
        return float(np.percentile(self.interactive_ms, percent)) if self.interactive_ms else float("nan")

    @property
    def met(self) -> bool:
        """p95 under the target and every interactive request answered 200."""
        answered = self.interactive_status[200] == sum(self.interactive_status.values())
        return answered and self.interactive_percentile(95) < TARGET_P95_MS


def bulk_bodies(corpus: Corpus, model: str, client: int, count: int) -> list[bytes]:
    """``count`` bodies of ``BULK_TEXTS`` texts for bulk client ``client`` (distinct across clients)."""
    return [msgspec.json.encode({"model": model, "encoding_format": "base64",
                                 "input": cycle(corpus.mixed, (client * count + i) * BULK_TEXTS, BULK_TEXTS)})
            for i in range(count)]


async def measure(url: str, corpus: Corpus, model: str, duration_s: float) -> FairnessResult:
    """Run load 5 against the server at ``url`` for ``duration_s`` seconds of interactive requests."""
    result = FairnessResult()
    bulk = [make_client(url) for _ in range(BULK_CLIENTS)]
    interactive = make_client(url)
    short = [msgspec.json.encode({"model": model, "input": text, "encoding_format": "base64"})
             for text in corpus.short[:512]]

    async def bulk_client(number: int) -> None:
        bodies = bulk_bodies(corpus, model, number, 4)
        sent = 0
        while True:
            start = time.perf_counter()
            status, _ = await post_json(bulk[number], "/v1/embeddings", bodies[sent % len(bodies)])
            result.bulk_status[status] += 1
            if status == 200:
                result.bulk_texts += BULK_TEXTS
                sent += 1
            else:
                if status == 429:
                    result.refusal_ms.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(BULK_RETRY_S)

    async def interactive_client() -> None:
        await asyncio.sleep(SETTLE_S)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < duration_s:
            sent = time.perf_counter()
            status, _ = await post_json(interactive, "/v1/embeddings", short[n % len(short)])
            result.interactive_status[status] += 1
            if status == 200:
                result.interactive_ms.append((time.perf_counter() - sent) * 1000)
            n += 1
        result.elapsed_s = time.perf_counter() - start

    try:
        await post_json(interactive, "/v1/embeddings", short[0])  # open the connection, warm the route
        bulk_tasks = [asyncio.ensure_future(bulk_client(i)) for i in range(BULK_CLIENTS)]
        await interactive_client()
        for task in bulk_tasks:  # hang up on the bulk requests still in flight: the server drops them
            task.cancel()
        await asyncio.gather(*bulk_tasks, return_exceptions=True)
    finally:
        await asyncio.gather(*(http.close() for http in [*bulk, interactive]))
    return result


def run_fairness_load(url: str, corpus: Corpus, model: str, duration_s: float) -> FairnessResult:
    """``measure`` on a fresh event loop."""
    return asyncio.run(measure(url, corpus, model, duration_s))


def _statuses(counts: Counter) -> str:
    answers = ", ".join(f"{status or 'no answer'}: {count}" for status, count in sorted(counts.items()))
    return answers or "none finished within the run"


def format_fairness_load(result: FairnessResult) -> str:
    """The report's lines for load 5."""
    refused = result.refusal_ms
    refusal = (f"{np.percentile(refused, 50):.0f} ms p50, {np.percentile(refused, 95):.0f} ms p95"
               if refused else "none refused")
    verdict = "met" if result.met else "MISSED"
    return "\n".join([
        f"Load 5, interactive requests under bulk load ({BULK_CLIENTS} clients keep {BULK_TEXTS}-text "
        "requests queued):", "",
        f"- one-text requests, one at a time for {result.elapsed_s:.1f} s: p50 "
        f"{result.interactive_percentile(50):.0f} ms, p95 {result.interactive_percentile(95):.0f} ms "
        f"(target p95 < {TARGET_P95_MS:.0f} ms, all 200: {verdict}); answers "
        f"{_statuses(result.interactive_status)}",
        f"- bulk requests: answers {_statuses(result.bulk_status)}; "
        f"{result.bulk_texts / max(result.elapsed_s, 1e-9):.0f} texts/s served; refusals (429) came back "
        f"in {refusal}",
    ])
