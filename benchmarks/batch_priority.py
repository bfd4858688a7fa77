"""Online latency while a batch job runs, and the job's throughput (issue: "Online traffic first").

Starts ``gateway serve`` on a temporary data directory, then measures:

1. one-text ``/v1/embeddings`` latency (p50/p90, sequential) on the idle server;
2. the same while a batch of ``--lines`` one-text ``/v1/embeddings`` lines runs;
3. the job's lines (texts) per second alone, over ``--window`` seconds with no online traffic;
4. 256-text requests, 4 at once (the shape of ``gateway bench``'s load 2), on the same server;
5. optionally (``--bench``) ``gateway bench --loads 2`` on the same server (256 texts per request), the
   throughput the job's is compared with.

    python benchmarks/batch_priority.py --lines 20000 --requests 200 --window 20 --bench

The machine's other load shows in the spread: the idle p50 is measured twice (before and after) to
say how noisy it is.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import openai

from gateway.bench.corpus import cycle, load_corpus
from gateway.bench.server import started_server

MODEL = "all-MiniLM-L6-v2"


def latencies(client: httpx.Client, texts: list[str]) -> list[float]:
    out = []
    for text in texts:
        start = time.perf_counter()
        client.post("/v1/embeddings", json={"model": MODEL, "input": text}).raise_for_status()
        out.append((time.perf_counter() - start) * 1000)
    return out


def bulk_rate(url: str, texts: list[str], concurrency: int = 4) -> float:
    """Texts/s of 256-text ``/v1/embeddings`` requests, ``concurrency`` at once (gateway bench load 2)."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [
        {"model": MODEL, "input": texts[i : i + 256], "encoding_format": "base64"}
        for i in range(0, len(texts), 256)
    ]
    with httpx.Client(base_url=url, timeout=600) as client, ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        list(pool.map(lambda body: client.post("/v1/embeddings", json=body).raise_for_status(), bodies))
        return len(texts) / (time.perf_counter() - start)


def describe(name: str, values: list[float]) -> str:
    qs = statistics.quantiles(values, n=10)
    return f"{name}: p50 {statistics.median(values):.1f} ms, p90 {qs[8]:.1f} ms ({len(values)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--bench", action="store_true", help="also run gateway bench --loads 2")
    args = parser.parse_args()
    corpus = load_corpus()
    # distinct queries per phase, and no embedding cache: every request runs the model
    queries = [cycle(corpus.short, phase * args.requests, args.requests) for phase in range(4)]
    lines = cycle(corpus.mixed, 0, args.lines)
    data = b"".join(
        json.dumps(
            {
                "custom_id": str(i),
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": MODEL, "input": text},
            }
        ).encode()
        + b"\n"
        for i, text in enumerate(lines)
    )
    with (
        tempfile.TemporaryDirectory() as data_dir,
        started_server(None, {"GATEWAY_DATA_DIR": data_dir, "GATEWAY_CACHE_MAX_BYTES": "0"}) as url,
    ):
        http = httpx.Client(base_url=url, timeout=120)
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        latencies(http, queries[3][:20])  # warm-up
        idle = latencies(http, queries[0])
        upload = sdk.files.create(file=("bulk.jsonl", io.BytesIO(data)), purpose="batch")
        batch = sdk.batches.create(
            input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        pause = threading.Event()
        while sdk.batches.retrieve(batch.id).request_counts.completed < 512:
            pause.wait(0.2)
        busy = latencies(http, queries[1])
        start_done, start = sdk.batches.retrieve(batch.id).request_counts.completed, time.perf_counter()
        pause.wait(args.window)
        job = sdk.batches.retrieve(batch.id)
        rate = (job.request_counts.completed - start_done) / (time.perf_counter() - start)
        sdk.batches.cancel(batch.id)
        while sdk.batches.retrieve(batch.id).status not in ("cancelled", "completed"):
            pause.wait(0.2)
        idle_after = latencies(http, queries[2])
        bulk = bulk_rate(url, cycle(corpus.mixed, args.lines, 8 * 256))
        print(describe("idle, before the job", idle), flush=True)
        print(describe("while the job runs", busy))
        print(describe("idle, after the job", idle_after))
        print(
            f"ratio p50 busy / idle: {statistics.median(busy) / statistics.median(idle):.2f} "
            f"(idle before/after: {statistics.median(idle_after) / statistics.median(idle):.2f})"
        )
        print(
            f"job alone: {rate:.0f} lines/s (one text each) over {args.window:g} s; "
            f"{job.request_counts.completed} of {args.lines} lines done when cancelled"
        )
        print(
            f"online bulk on the same server (gateway bench load 2's shape: 256 mixed texts a request, "
            f"4 at once): {bulk:.0f} texts/s; job / bulk: {rate / bulk:.2f}"
        )
        if args.bench:
            subprocess.run(
                [sys.executable, "-m", "gateway", "bench", "--url", url, "--loads", "2", "--duration", "10"],
                check=False,
            )


if __name__ == "__main__":
    main()
