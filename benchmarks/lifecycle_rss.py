"""Resident memory over load / unload cycles of one model (issue: unloading must not leak).

Loads the default model (all-MiniLM-L6-v2) as an on-demand model, embeds one text, unloads it (runner
and tokenizer threads stopped, engine and cache dropped, allocators emptied), N times, and prints the
process RSS before the first load, after it, after the first unload and after the last cycle, plus the
time to the first answer of the on-demand model (load + warm-up + the request).

    python benchmarks/lifecycle_rss.py [--cycles 20] [--default-arenas]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from gateway.config import DEFAULT_MODEL, ModelConfig, Settings
from gateway.serving import service
from gateway.serving.lifecycle import limit_malloc_arenas
from gateway.serving.memory import process_memory
from gateway.serving.registry import Registry


def mib(value: int | None) -> str:
    return f"{(value or 0) / 2**20:.1f} MiB"


async def main(cycles: int, default_arenas: bool) -> None:
    if not default_arenas:
        limit_malloc_arenas()  # as `gateway serve` does when models may unload
    registry = Registry(Settings(_env_file=None, models=[ModelConfig(name="m", source=DEFAULT_MODEL,
                                                                      load="on_demand")]))
    await registry.load_all()
    served = registry.get("m")
    before = process_memory().rss_bytes
    start = time.perf_counter()
    await service.embed_texts(registry, "m", ["time to first answer"])
    first_answer_s = time.perf_counter() - start
    loaded = process_memory().rss_bytes
    await registry.unload(served)
    unloaded = process_memory().rss_bytes
    for _ in range(cycles - 1):
        await service.embed_texts(registry, "m", ["a text"])
        await registry.unload(served)
    after = process_memory().rss_bytes
    await registry.close()
    print(f"RSS before load:            {mib(before)}")
    print(f"RSS after load + 1 request: {mib(loaded)}")
    print(f"RSS after unload:           {mib(unloaded)}")
    print(f"RSS after {cycles} cycles:        {mib(after)}  (growth over the cycles: "
          f"{mib(after - unloaded)}, since before load: {mib(after - before)})")
    print(f"time to first answer (on-demand load + warm-up + request): {first_answer_s:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--default-arenas", action="store_true", help="keep glibc's default malloc arenas")
    args = parser.parse_args()
    asyncio.run(main(args.cycles, args.default_arenas))
