"""Per-request CPU budget of the server by stage, for load 1 (one short text per request, base64, cache off).

Where ``gateway bench`` says how fast the server is, this says where its CPU goes. For each concurrency it
starts ``gateway serve`` (or reuses one started here for every concurrency), warms it for 2 s, then runs
load 1 for ``--duration`` s while it

- reads the CPU time of every thread of the server process (``/proc/<pid>/task/<tid>/stat``) before and
  after: exact, and hardly moved by other processes on a shared machine (wall-clock figures are);
- samples the server's Python stacks with py-spy (``record --format raw --threads --nonblocking``; only
  threads on a CPU are sampled), and splits each thread's CPU time across stages in proportion to its
  samples, each sample going to the stage of its deepest frame a rule below recognizes.

Threads py-spy cannot see (no Python frame: torch's intra-op worker threads) are counted whole under
``forward pass``. Then, with the server stopped, the in-process reference (sentence-transformers
``encode`` at the server's precision, batch 32, one torch thread) is timed on the same texts: its CPU per
text is what the model itself costs, against which the ``forward pass`` row and the server total read.

Stage rows are CPU microseconds per request (all threads); ``wall texts/s`` is noisy on a shared box, CPU
per request is not. Run (py-spy must be allowed to read the server's memory, as root or with ptrace):

    python benchmarks/stage_budget.py --concurrency 32,128 --duration 10
    python benchmarks/stage_budget.py --env GATEWAY_CPU_LANES=1     # a variant's budget
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from gateway.bench.client import run_load
from gateway.bench.corpus import load_corpus
from gateway.bench.loads import Load, embedding_bodies
from gateway.bench.server import free_port, stop_process, wait_until_ready
from gateway.config import DEFAULT_MODEL

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
STAGES = ("HTTP parse + response write", "event loop + socket I/O (uvloop)", "middleware + auth + routing",
          "request log + metrics", "body decode + validation", "tokenization", "service logic (admission, "
          "limits, normalize)", "queue hand-off (futures, runner queue, threads)", "forward pass",
          "response encode", "other")
# (stage, regex on "function (file:line)"): a sample goes to the stage of its deepest frame that matches
RULES: list[tuple[str, re.Pattern]] = [(stage, re.compile(pattern)) for stage, pattern in [
    ("queue hand-off (futures, runner queue, threads)",
     r"tokenizer_queue\.py|wrap_future|call_soon_threadsafe"),
    ("tokenization", r"tokeniz|/tokenizers/|prompted\.py|_tokenize_mixed"),
    ("forward pass", r"/torch/|/transformers/|/sentence_transformers/|gateway/engines/|non_finite_rows"),
    ("request log + metrics", r"/logging/|request_log\.py|prometheus_client|gateway/http/metrics\.py|"
                              r"batch_stats\.py"),
    ("response encode", r"to_embedding_response|protocol/openai\.py|litestar/response/|big_response|"
                        r"encode_json|msgspec_hooks.*encode"),
    ("body decode + validation", r"litestar/_kwargs|litestar/_signature|msgspec_hooks|"
                                 r"litestar/datastructures|"
                                 r"json_depth\.py|check_body|json_only|openai_dialects\.py|_inputs \(|"
                                 r"split_input|input_items|litestar/connection/|big_body"),
    ("middleware + auth + routing", r"gateway/http/auth\.py|rate_limit|gateway/http/middleware\.py|"
                                    r"request_context\.py|routes/common\.py|error_handlers\.py|litestar/|"
                                    r"routes/openai\.py|/uuid\.py|/re/"),
    ("service logic (admission, limits, normalize)",
     r"serving/service\.py|admission\.py|embedding_cache\.py|pooling\.py|asyncio/timeouts\.py"),
    ("queue hand-off (futures, runner queue, threads)",
     r"serving/runner\.py|batch_queue\.py|serving/registry\.py|asyncio/futures\.py|concurrent/futures|"
     r"threading\.py|offload\.py"),
    ("HTTP parse + response write", r"uvicorn/|httptools|asyncio/transports|asyncio/streams|h11|granian/"),
    ("event loop + socket I/O (uvloop)", r"asyncio/|uvloop|runners\.py"),
]]


def stage_of(frames: list[str]) -> str:
    """The stage of one sampled stack (root first): that of its deepest frame a rule matches."""
    for frame in reversed(frames):
        for stage, pattern in RULES:
            if pattern.search(frame):
                return stage
    return "other"


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of ``pid``, by thread id."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        times[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime
    return times


def batch_counts(url: str) -> tuple[float, float]:
    """(forward passes, inputs in them) so far, from the server's ``/metrics``."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    figures = {}
    for name in ("gateway_batch_size_count", "gateway_batch_size_sum"):
        figures[name] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith(name + "{") or line.startswith(name + " "))
    return figures["gateway_batch_size_count"], figures["gateway_batch_size_sum"]


def parse_raw(path: Path) -> dict[int, Counter]:
    """py-spy ``--format raw --threads`` output -> per thread id, samples by stage."""
    by_thread: dict[int, Counter] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        head, _, rest = stack.partition(";")
        match = re.match(r"thread \((\d+)\)", head)
        if not match or not count.isdigit():
            continue
        frames = rest.split(";")[1:]  # the first is the thread's name
        by_thread[int(match.group(1))][stage_of(frames)] += int(count)
    return by_thread


@contextmanager
def server_process(model: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``gateway serve`` on a free port with the embedding cache off; yields (url, pid) once ready."""
    port = free_port()
    args = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port), "--model",
            model]
    with tempfile.TemporaryDirectory(prefix="stage-budget-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(args, env={**os.environ, "GATEWAY_CACHE_MAX_BYTES": "0", **env},
                                       stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, process, log_path)
            yield url, process.pid
        finally:
            stop_process(process)


def measure(url: str, pid: int, load: Load, duration_s: float, rate: int,
            keep_raw: str | None = None) -> dict:
    """Run ``load`` for ``duration_s`` under py-spy; returns CPU µs per request by stage and the rates."""
    asyncio.run(run_load(url, load, duration_s=2, max_requests=10**7))  # warm-up
    with tempfile.TemporaryDirectory(prefix="stage-budget-") as tmp:
        raw = Path(tmp) / "raw.txt"
        command = [shutil.which("py-spy") or "py-spy", "record", "-p", str(pid), "--format", "raw",
                   "--threads", "--nonblocking", "-r", str(rate), "-d", str(int(duration_s) + 1),
                   "-o", str(raw)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # py-spy attached
        batches_before = batch_counts(url)
        before, started = thread_cpu_s(pid), time.perf_counter()
        result = asyncio.run(run_load(url, load, duration_s=duration_s, max_requests=10**7))
        after, elapsed = thread_cpu_s(pid), time.perf_counter() - started
        batches = [b - a for a, b in zip(batches_before, batch_counts(url), strict=True)]
        _, errors = spy.communicate(timeout=duration_s + 60)
        if spy.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {errors.decode(errors='replace')[-500:]}")
        samples = parse_raw(raw)
        if keep_raw:
            Path(keep_raw).mkdir(parents=True, exist_ok=True)
            shutil.copy(raw, Path(keep_raw) / f"c{load.concurrency}.txt")
    requests = max(1, result.requests)
    us = Counter()
    loop_us = native_us = 0.0
    for tid, end in after.items():
        cpu = end - before.get(tid, 0.0)
        if tid == pid:
            loop_us = cpu * 1e6 / requests
        counted = samples.get(tid)
        if not counted:  # a thread without Python frames: torch's intra-op workers
            us["forward pass"] += cpu * 1e6 / requests
            native_us += cpu * 1e6 / requests
            continue
        total = sum(counted.values())
        for stage, count in counted.items():
            us[stage] += cpu * 1e6 / requests * count / total
    return {"concurrency": load.concurrency, "requests": result.requests, "errors": result.errors,
            "texts_per_s": result.texts_per_s, "p50_ms": result.percentile_ms(50), "elapsed_s": elapsed,
            "client_us": result.client_cpu_ms * 1000, "loop_us": loop_us, "native_us": native_us,
            "mean_batch": batches[1] / batches[0] if batches[0] else 0.0, "stages": dict(us),
            "total_us": sum(us.values())}


def reference_cpu(model_name: str, texts: list[str], precision: str) -> dict:
    """In-process sentence-transformers at ``precision``, batch 32, on one torch thread (as each of the
    server's two CPU lanes runs under load; and no OpenMP worker spinning to count): CPU µs per text,
    best of 3 passes over ``texts``."""
    from gateway.bench.reference import encode, load_model

    model = load_model(model_name, 1, precision)
    encode(model, texts[:64], 32)  # warm-up
    best = math.inf
    for _ in range(3):
        cpu = time.process_time()
        encode(model, texts, 32)
        best = min(best, (time.process_time() - cpu) * 1e6 / len(texts))
    return {"cpu_us_per_text": best}


def format_table(runs: list[dict], reference: dict | None, precision: str) -> str:
    """The Markdown budget: one column per concurrency, CPU µs per request by stage."""
    def row(label: str, key: str, digits: int = 0, stage: bool = False) -> str:
        cells = [(r["stages"].get(key, 0) if stage else r[key]) for r in runs]
        return f"| {label} | " + " | ".join(f"{cell:.{digits}f}" for cell in cells) + " |"

    columns = " | ".join(f"c={r['concurrency']}" for r in runs)
    lines = [f"| stage (CPU µs per one-text request) | {columns} |", "|---|" + "---:|" * len(runs)]
    lines += [row(stage, stage, stage=True) for stage in STAGES]
    lines += [row("**server total**", "total_us"),
              row("of which torch's native worker threads (in forward pass)", "native_us"),
              row("of which the event-loop thread", "loop_us"),
              row("mean batch (inputs per forward pass)", "mean_batch", 1),
              row("load generator (client process)", "client_us"),
              row("wall texts/s (noisy on a shared box)", "texts_per_s"),
              row("p50 ms", "p50_ms", 1)]
    if reference:
        lines.append(f"\nIn-process reference ({precision}, batch 32, one torch thread, same texts): "
                     f"{reference['cpu_us_per_text']:.0f} CPU µs per text. On a CPU-bound box the server's "
                     "ratio to in-process is about this over the server total (client CPU aside).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="32,128", help="comma-separated, e.g. 1,32,128")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per concurrency")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--env", default="", help="server environment, e.g. GATEWAY_CPU_LANES=1,A=B")
    parser.add_argument("--keep-raw", help="copy py-spy's raw stacks here (one file per concurrency)")
    parser.add_argument("--url", help="measure this running server (its cache off) instead of starting one")
    parser.add_argument("--pid", type=int, help="with --url: the id of the process that runs its app")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-process reference")
    args = parser.parse_args()

    env = dict(pair.split("=", 1) for pair in args.env.split(",") if pair)
    corpus = load_corpus()
    bodies = embedding_bodies(corpus.short, 1, args.model, "base64", 512)
    load_average = os.getloadavg()
    runs = []
    with (nullcontext((args.url, args.pid)) if args.url else server_process(args.model, env)) as (url, pid):
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            load = Load("1", "1 text, base64", "/v1/embeddings", concurrency, 1, "short", bodies, bodies[-1])
            runs.append(measure(url, pid, load, args.duration, args.rate, args.keep_raw))
        precision = _precision(url, args.model)
    reference = None if args.no_reference else reference_cpu(args.model, corpus.short[:1024], precision)
    print(f"stage budget: model {args.model} ({precision}), {os.cpu_count()} CPUs, {args.duration:g} s per "
          f"concurrency, server env {env or '-'}, load average {load_average[0]:.2f} before / "
          f"{os.getloadavg()[0]:.2f} after, {time.strftime('%Y-%m-%d %H:%M')}")
    print(format_table(runs, reference, precision), flush=True)


def _precision(url: str, model: str) -> str:
    from gateway.bench.reference import server_dtype

    return server_dtype(url, model)


if __name__ == "__main__":
    main()
