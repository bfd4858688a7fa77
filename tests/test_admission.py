"""Admission before work, one deadline per request, and interactive requests under bulk load, through
the embedding service with a fake engine (its tokenizer and forward passes can be held or slowed on
demand; the real model cannot).

- An over-budget request is refused (429 + Retry-After) while the tokenizer is still busy with queued
  work, and its texts are never tokenized.
- The request deadline covers tokenization: a request stuck behind the tokenizer gets its 408, and its
  texts are never tokenized once it has gone.
- While six clients keep 1,000-text requests queued, one-text requests are answered at p95 under 1 s.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from gateway.config import Settings
from gateway.engines import ModelSpec, Tokens
from gateway.errors import Overloaded, RequestTimeout
from gateway.serving.admission import Admission
from gateway.serving.registry import Registry
from gateway.serving.service import embed_texts

DIM = 4
WAIT_S = 30  # upper bound on waits for events; they come far sooner


class FakeEngine:
    """Tokens: one per word plus two; rows: ``[words, 1, 1, 1]``. ``gate`` (when set up) holds every
    tokenization of a text starting with "held"; ``tokenize_s_per_text`` and ``embed_s_per_batch`` slow
    the tokenizer and the forward pass the way real ones are (both sleep, releasing the GIL)."""

    lanes = 2

    def __init__(self) -> None:
        self.spec = ModelSpec(name="fake", task="embed", max_tokens=128, dim=DIM, engine="fake", device="cpu")
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()  # set while a held tokenization waits at the gate
        self.tokenized: list[str] = []
        self.tokenize_s_per_text = 0.0
        self.embed_s_per_batch = 0.0

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> list[Tokens]:
        if any(text.startswith("held") for text in texts):
            self.holding.set()
            assert self.gate.wait(WAIT_S)
        self.tokenized.extend(texts)
        time.sleep(self.tokenize_s_per_text * len(texts))
        return [Tokens(list(range(len(text.split()) + 2))) for text in texts]

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        time.sleep(self.embed_s_per_batch)
        rows = np.ones((len(batch), DIM), np.float32)
        rows[:, 0] = [len(tokens) - 2 for tokens in batch]
        return rows


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    engine = FakeEngine()
    monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
    monkeypatch.setattr("gateway.serving.registry.load_engine", lambda config, path, **options: engine)
    return engine


async def loaded(settings: Settings) -> Registry:
    registry = Registry(settings)
    await registry.load_all()
    assert registry.models[0].state == "ready", registry.models[0].error
    return registry


def texts(prefix: str, count: int, words: int = 8) -> list[str]:
    return [f"{prefix} {i} " + "word " * words for i in range(count)]


def mixed_texts(prefix: str, count: int) -> list[str]:
    """Texts of 3 to 62 words, as real bulk requests hold: the length-sorted queue interleaves them with
    any other request's inputs."""
    return [f"{prefix} {i} " + "word " * (i * 7 % 60 + 1) for i in range(count)]


def test_an_over_budget_request_is_refused_before_queued_work_is_tokenized(engine: FakeEngine) -> None:
    settings = Settings(model="fake", max_queue_tokens=2000, cache_max_bytes=0)
    first, second = texts("held", 500), texts("second", 500)  # ~6,000 tokens each: over the budget

    async def main() -> None:
        registry = await loaded(settings)
        engine.gate.clear()
        admitted = asyncio.create_task(embed_texts(registry, "fake", first))  # an empty model admits it
        assert await asyncio.to_thread(engine.holding.wait, WAIT_S)  # it holds the tokenizer now
        with pytest.raises(Overloaded) as refused:
            await asyncio.wait_for(embed_texts(registry, "fake", second), WAIT_S)
        assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
        assert not engine.gate.is_set()  # refused while the first request still waited to be tokenized
        engine.gate.set()
        result = await asyncio.wait_for(admitted, WAIT_S)
        assert result.vectors.shape == (500, DIM)
        assert registry.models[0].admission.in_flight == 0  # both tickets released
        await registry.close()

    asyncio.run(main())
    assert not set(second) & set(engine.tokenized)  # the refused request cost no tokenization


def test_the_request_deadline_covers_tokenization(engine: FakeEngine) -> None:
    settings = Settings(model="fake", request_timeout_s=0.3, cache_max_bytes=0)
    holder, waiting = texts("held", 100), texts("behind", 100)

    async def main() -> None:
        registry = await loaded(settings)
        engine.gate.clear()
        held = asyncio.create_task(embed_texts(registry, "fake", holder))
        assert await asyncio.to_thread(engine.holding.wait, WAIT_S)
        with pytest.raises(RequestTimeout) as timed_out:  # queued behind the held tokenization
            await asyncio.wait_for(embed_texts(registry, "fake", waiting), WAIT_S)
        assert timed_out.value.status == 408
        with pytest.raises(RequestTimeout):  # the held one itself: its tokenization never finished
            await asyncio.wait_for(held, WAIT_S)
        engine.gate.set()
        done = await asyncio.wait_for(embed_texts(registry, "fake", ["after the gate opened"]), WAIT_S)
        assert done.vectors.shape == (1, DIM)
        assert registry.models[0].admission.in_flight == 0
        await registry.close()

    asyncio.run(main())
    assert not set(waiting) & set(engine.tokenized)  # skipped: its caller had gone before it started


def test_one_text_requests_are_answered_within_a_second_while_bulk_requests_fill_the_queue(
        engine: FakeEngine) -> None:
    # At these speeds a 1,000-text request (~34 tokens a text) takes ~2 s of engine time (~20 batches of
    # 2,048 padded tokens at 0.2 s each, two lanes) and 0.1 s of tokenizing; six of them keep ~10 s of
    # work queued. Served oldest-first, a one-text request waited for all of it.
    engine.tokenize_s_per_text, engine.embed_s_per_batch = 0.0001, 0.2
    settings = Settings(model="fake", cache_max_bytes=0)
    latencies: list[float] = []
    depths: list[int] = []  # inputs queued when each one-text request was sent
    bulk_done = [0]

    async def main() -> None:
        registry = await loaded(settings)
        stop = asyncio.Event()

        async def bulk(client: int) -> None:
            n = 0
            while not stop.is_set():
                result = await embed_texts(registry, "fake", mixed_texts(f"bulk {client} {n}", 1000))
                assert result.vectors.shape == (1000, DIM)
                bulk_done[0] += 1
                n += 1

        clients = [asyncio.create_task(bulk(i)) for i in range(6)]
        runner = registry.models[0].runner
        deadline = time.monotonic() + WAIT_S
        while runner.queued_items < 3000:  # the queue fills with bulk inputs first
            assert time.monotonic() < deadline, "the bulk clients never filled the queue"
            await asyncio.sleep(0.01)
        for i in range(25):
            depths.append(runner.queued_items)
            start = time.perf_counter()
            result = await embed_texts(registry, "fake", [f"query {i} " + "word " * (20 + i % 5)])
            latencies.append(time.perf_counter() - start)
            assert result.vectors[0, 0] == 22 + i % 5
        stop.set()
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        await registry.close()

    asyncio.run(main())
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"\none-text requests under bulk load: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"{bulk_done[0]} bulk requests served meanwhile, median queue {np.median(depths):.0f} inputs")
    assert np.median(depths) > 1000  # measured under load
    assert p95 < 1.0, latencies


def test_bulk_requests_that_fill_the_budget_leave_small_requests_a_pool_of_their_own() -> None:
    admission = Admission()
    limits = {"budget": 10_000, "max_wait_s": None, "tokens_per_s": None, "name": "m"}
    huge = admission.admit(50_000, **limits)  # larger than the budget: an idle model admits it
    with pytest.raises(Overloaded):
        admission.admit(200, **limits)  # bulk: over the budget
    queries = [admission.admit(20, **limits) for _ in range(50)]  # 1,000 tokens: 10% of the budget
    with pytest.raises(Overloaded):
        admission.admit(20, **limits)  # the small pool is full too
    for ticket in [huge, *queries]:
        ticket.release()
    assert admission.in_flight == admission.small_in_flight == 0 and not admission.tickets


def test_the_wait_bound_counts_only_the_work_that_runs_first() -> None:
    # 1,000 tokens/s, at most 10 s of wait: with two 4,000-token requests in flight a third would wait
    # 12 s and is refused, but a 10-token query waits for ~30 tokens of work under shortest-first
    admission = Admission()
    limits = {"budget": 10**9, "max_wait_s": 10.0, "tokens_per_s": 1000.0, "name": "m"}
    bulk = [admission.admit(4000, **limits) for _ in range(2)]
    with pytest.raises(Overloaded) as refused:
        admission.admit(4000, **limits)
    assert int(refused.value.headers["Retry-After"]) == 8  # the 8,000 tokens in flight, at 1,000/s
    query = admission.admit(10, **limits)
    assert admission.in_flight == 8010
    for ticket in [*bulk, query]:
        ticket.release()
