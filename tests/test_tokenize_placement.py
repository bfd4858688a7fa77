"""Where ``ServedModel.tokenize`` runs a tokenization call: inline on the event loop only for tiny inputs
while the tokenizer is free, else on the model's tokenizer thread, and never two calls at once."""

from __future__ import annotations

import asyncio
import threading
import time

from gateway.config import ModelConfig
from gateway.registry import ServedModel


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
