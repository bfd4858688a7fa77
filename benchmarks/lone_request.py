"""Where a lone one-text request's time goes: client latency, the server's ``X-Process-Time``, and the
forward pass inside it (the server's ``gateway_batch_duration_seconds`` histogram), alternated between
settings so a drifting machine hits each alike.

For each variant (environment settings, ``;`` between variants, as ``server_settings_ab.py`` takes them)
it starts ``gateway serve`` (cache off), sends ``--warm`` then ``--requests`` sequential one-text OpenAI
requests (base64, the benchmark's short texts, each text once) from a plain blocking ``httpx`` client,
and reads ``/metrics`` around the measured ones. Printed per run, in ms: client p50, ``X-Process-Time``
p50 (the server from the request's arrival in the app to its response head), the mean forward pass,
and the server's CPU per request (``process_cpu_seconds_total``, every thread).

    python benchmarks/lone_request.py "GATEWAY_CPU_LANES=2;GATEWAY_CPU_LANES=1" --rounds 3
    python benchmarks/lone_request.py "PYTHONPATH=/path/to/tree/a;PYTHONPATH=/path/to/tree/b"
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families
from server_settings_ab import parse_variants  # a sibling script: run from this folder

from gateway.bench.corpus import load_corpus
from gateway.bench.loads import embedding_bodies
from gateway.bench.server import started_server
from gateway.config import DEFAULT_MODEL


def totals(text: str) -> Counter[str]:
    """Each sample name of a ``/metrics`` text (``gateway_batch_duration_seconds_sum``,
    ``process_cpu_seconds_total``...) summed over its label sets."""
    summed: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            summed[sample.name] += sample.value
    return summed


def measure(url: str, bodies: tuple[bytes, ...], warm: int) -> dict[str, float]:
    """Sequential requests of ``bodies`` (the first ``warm`` unmeasured); figures in ms."""
    with httpx.Client(base_url=url, headers={"content-type": "application/json"}, timeout=60) as client:
        for body in bodies[:warm]:
            client.post("/v1/embeddings", content=body).raise_for_status()
        before = client.get("/metrics").text
        latency, process = [], []
        for body in bodies[warm:]:
            start = time.perf_counter()
            response = client.post("/v1/embeddings", content=body)
            latency.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            process.append(float(response.headers["x-process-time"]) * 1000)
        after = client.get("/metrics").text
    moved = totals(after)
    moved.subtract(totals(before))
    passes = max(moved["gateway_batch_duration_seconds_count"], 1)
    return {"client p50": statistics.median(latency), "X-Process-Time p50": statistics.median(process),
            "forward pass mean": moved["gateway_batch_duration_seconds_sum"] / passes * 1000,
            "server CPU per request": moved["process_cpu_seconds_total"] / (len(bodies) - warm) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="?", default="",
                        help='e.g. "GATEWAY_CPU_LANES=1;GATEWAY_CPU_LANES=2"')
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()

    bodies = embedding_bodies(load_corpus().short, 1, args.model, "base64", args.warm + args.requests)
    variants = parse_variants(args.variants)
    for round_number in range(args.rounds):
        for env in variants:
            with started_server(args.model, env) as url:
                figures = measure(url, bodies, args.warm)
            shown = ", ".join(f"{name} {value:.2f}" for name, value in figures.items())
            print(f"round {round_number + 1} {env}: {shown} (ms)", flush=True)


if __name__ == "__main__":
    main()
