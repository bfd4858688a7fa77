"""Where ``ServedModel.tokenize`` runs a tokenization call: inline on the event loop only for tiny inputs
while the tokenizer is free, else on the model's tokenizer thread, and never two calls at once."""

from __future__ import annotations

import asyncio
import threading
import time

from gateway.config import ModelConfig, Settings
from gateway.engines import Tokens
from gateway.serving import service
from gateway.serving.registry import ServedModel
from gateway.serving.service import TINY_INPUT_CHARS
from gateway.serving.tokenizer_queue import TokenizerQueue


def thread_name() -> str:
    return threading.current_thread().name


def served_model() -> ServedModel:
    return ServedModel(ModelConfig(name="m"), "torch")


def test_a_tiny_call_runs_inline_and_others_on_the_tokenizer_thread():
    served = served_model()

    async def main() -> tuple[str, str, str]:
        loop_thread = thread_name()
        tiny = await served.tokenize(thread_name, tiny=True)
        big = await served.tokenize(thread_name)
        return loop_thread, tiny, big

    loop_thread, tiny, big = asyncio.run(main())
    assert tiny == loop_thread
    assert big.startswith("tokenizer") and big != loop_thread
    served.tokenizer_thread.shutdown()


def test_a_tiny_call_goes_to_the_thread_while_another_tokenization_runs_and_calls_never_overlap():
    served = served_model()
    running, overlaps = [], []

    def slow(label: str) -> str:
        running.append(label)
        if len(running) > 1:
            overlaps.append(list(running))
        time.sleep(0.2)
        running.remove(label)
        return thread_name()

    async def main() -> tuple[str, str, bool]:
        big = asyncio.ensure_future(served.tokenize(slow, "big"))
        await asyncio.sleep(0.05)  # the big call now holds the tokenizer
        started = time.perf_counter()
        tiny_task = asyncio.ensure_future(served.tokenize(slow, "tiny", tiny=True))
        await asyncio.sleep(0)
        loop_was_free = time.perf_counter() - started < 0.1  # the event loop did not wait for the lock
        return await big, await tiny_task, loop_was_free

    big, tiny, loop_was_free = asyncio.run(main())
    assert big.startswith("tokenizer") and tiny.startswith("tokenizer")
    assert loop_was_free
    assert overlaps == []
    served.tokenizer_thread.shutdown()


class ThreadRecordingEngine:
    """Tokenizes by words and records which thread each call ran on."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> list[Tokens]:
        self.threads.append(thread_name())
        return [Tokens(list(range(len(text.split()) + 2))) for text in texts]


def test_the_embedding_service_tokenizes_only_tiny_requests_inline():
    served = served_model()
    served.engine = engine = ThreadRecordingEngine()
    settings = Settings(model="m")
    query = "how do I embed one short query?"
    long_text = "word " * (TINY_INPUT_CHARS // 5 + 1)

    async def main() -> str:
        await service.tokenize(served, [query], True, settings)
        await service.tokenize(served, [long_text], True, settings)
        await service.tokenize(served, [query, query, query, query, query], True, settings)
        return thread_name()

    loop_thread = asyncio.run(main())
    assert len(query) <= TINY_INPUT_CHARS < len(long_text) and 5 * len(query) > TINY_INPUT_CHARS
    assert engine.threads[0] == loop_thread
    assert all(name.startswith("tokenizer") for name in engine.threads[1:])
    served.tokenizer_thread.shutdown()


def test_a_short_call_goes_before_waiting_long_ones_and_a_cancelled_one_is_skipped():
    queue = TokenizerQueue()
    gate, started, order = threading.Event(), threading.Event(), []

    def call(label: str) -> str:
        if label == "running":
            started.set()
            assert gate.wait(10)
        order.append(label)
        return label

    running = queue.submit(call, "running")
    assert started.wait(10)  # the thread is busy: what follows waits
    waiting = [queue.submit(call, f"long {i}") for i in range(3)]
    cancelled = queue.submit(call, "gone")
    short = queue.submit(call, "short", short=True)
    assert cancelled.cancel()  # its caller left before it started
    gate.set()
    assert short.result(10) == "short" and [f.result(10) for f in waiting] and running.result(10)
    assert order == ["running", "short", "long 0", "long 1", "long 2"]
    queue.shutdown()
