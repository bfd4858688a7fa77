"""A/B of server settings on load 1 (one short text per request, base64, cache off), alternated.

Each round starts one ``gateway serve`` per setting in turn, warms it for 2 s and measures ``--duration``
seconds at ``--concurrency``, so slow drift of a shared machine hits every setting alike; the medians
over ``--rounds`` are printed last. Settings are environment variables, ``;`` between variants:

    python benchmarks/server_settings_ab.py "GATEWAY_CPU_LANES=1;GATEWAY_CPU_LANES=2"
    python benchmarks/server_settings_ab.py "GATEWAY_DTYPE=float32;GATEWAY_DTYPE=bfloat16" --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from gateway.bench.client import run_load
from gateway.bench.corpus import load_corpus
from gateway.bench.loads import Load, embedding_bodies
from gateway.bench.server import started_server
from gateway.config import DEFAULT_MODEL


def parse_variants(text: str) -> list[dict[str, str]]:
    """``"A=1,B=2;A=3"`` -> ``[{"A": "1", "B": "2"}, {"A": "3"}]``, each with the cache turned off."""
    variants = []
    for variant in text.split(";"):
        env = dict(pair.split("=", 1) for pair in variant.split(",") if pair)
        variants.append({"GATEWAY_CACHE_MAX_BYTES": "0", **env})  # load 1 cycles its bodies
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", help="environment settings per variant, e.g. "
                        '"GATEWAY_CPU_LANES=1;GATEWAY_CPU_LANES=2"')
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--format", choices=("base64", "float"), default="base64", help="encoding_format")
    args = parser.parse_args()

    bodies = embedding_bodies(load_corpus().short, 1, args.model, args.format, 512)
    load = Load("1", f"1 text, {args.format}", "/v1/embeddings", args.concurrency, 1, "short", bodies,
                bodies[-1])
    variants = parse_variants(args.variants)
    texts_per_s: list[list[float]] = [[] for _ in variants]
    p50_ms: list[list[float]] = [[] for _ in variants]
    for round_number in range(args.rounds):
        for index, env in enumerate(variants):
            with started_server(args.model, env) as url:
                asyncio.run(run_load(url, load, duration_s=2, max_requests=10**6))  # warm-up
                result = asyncio.run(run_load(url, load, duration_s=args.duration, max_requests=10**6))
            texts_per_s[index].append(result.texts_per_s)
            p50_ms[index].append(result.percentile_ms(50))
            print(f"round {round_number + 1} {env}: {result.texts_per_s:.0f} texts/s, "
                  f"p50 {result.percentile_ms(50):.1f} ms, errors {result.errors}, "
                  f"client CPU {result.client_cpu_ms:.2f} ms/request", flush=True)
    for env, figures, p50s in zip(variants, texts_per_s, p50_ms, strict=True):
        print(f"{env}: median {statistics.median(figures):.0f} texts/s, p50 {statistics.median(p50s):.1f} ms "
              f"over {len(figures)} rounds")


if __name__ == "__main__":
    main()
