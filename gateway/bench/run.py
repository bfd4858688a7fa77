"""``gateway bench``: measure the in-process reference, then the server under every selected load.

The reference runs first, in this process, with no server running (or the ``--url`` one idle): in
float32, and again at the server's precision when that differs (bfloat16 on CPUs with AMX); then the
server's idle memory is read from its ``/health``; then each load runs for ``--duration`` seconds (or
``--requests`` requests) against the server (started here on a free loopback port, or the one at
``--url``); then, with load 1, lone requests paired with bare forward passes of their texts
(``gateway.bench.paired``); then the references run again and the better of their two passes counts;
and the table is printed. Same corpus, same model, same thread count. Loads 1-3 run with the embedding
cache off; load 4 (``cache_load``) on a second server with the default cache; load 6 (``sparse_load``,
only when asked for) on a server of its own serving a SPLADE stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import time

import httpx
import msgspec

from gateway.bench import client as load_client
from gateway.bench.cache_load import format_cache_load, run_cache_load
from gateway.bench.corpus import load_corpus
from gateway.bench.fairness import format_fairness_load, run_fairness_load
from gateway.bench.loads import RERANK_TOP_N, Load, plan_loads
from gateway.bench.paired import format_paired, run_paired
from gateway.bench.reference import best_of, fitting_documents, load_model, measure_references, server_dtype
from gateway.bench.report import format_report
from gateway.bench.server import started_server, wait_until_ready
from gateway.bench.sparse_load import format_sparse_load, run_sparse_load
from gateway.config import DEFAULT_MODEL

PAIRED_REQUESTS = 400  # one text each, ~7 ms + a ~5 ms pass: about 5 s


def main(args: argparse.Namespace) -> None:
    """Run the benchmark and print the report."""
    groups = {g.strip() for g in args.loads.split(",") if g.strip()}
    if not groups <= {"1", "2", "3", "4", "5", "6"}:
        raise SystemExit(f"--loads takes groups 1, 2, 3, 4, 5 and 6, not {args.loads!r}")
    if args.quick:
        args.duration, args.requests = min(args.duration, 1.0), min(args.requests, 40)
    print(run_bench(args, groups), flush=True)


def run_bench(args: argparse.Namespace, groups: set[str]) -> str:
    """Reference, then server loads; returns the Markdown report."""
    import torch

    threads = args.threads or torch.get_num_threads()
    if groups == {"6"}:  # the sparse load alone: no dense server or reference
        return _sparse_section(args, threads)
    model_name = args.model or (_first_model(args.url) if args.url else DEFAULT_MODEL)
    corpus = load_corpus()
    cached = fairness = paired = None
    if args.url:
        wait_until_ready(args.url, timeout_s=60)
    precision = server_dtype(args.url, model_name)
    models = {"float32": load_model(model_name, threads)}
    if precision != "float32":
        models[precision] = load_model(model_name, threads, precision)
    at_precision = models.get(precision, models["float32"])  # the in-process model the server is paired with
    rerank_documents = fitting_documents(models["float32"], corpus.mixed)
    references = {dtype: measure_references(m, corpus, rerank_documents, groups, args.quick)
                  for dtype, m in models.items()}
    loads = plan_loads(corpus, rerank_documents, model_name, groups, args.quick)
    if args.url:
        memory = _idle_memory(args.url)
        results, server = _run_loads(args.url, loads, args), _server_facts(args.url, model_name)
        paired = _paired(args, args.url, at_precision, model_name, corpus, groups)
        if "5" in groups:
            fairness = run_fairness_load(args.url, corpus, model_name, args.duration)
        if "4" in groups:
            cached = run_cache_load(args.url, corpus, model_name, args.quick)
    else:
        env = {"OMP_NUM_THREADS": str(threads)} if args.threads else {}
        # loads 1-3 cycle through their bodies: measured with the cache off, so no answer comes from it
        with started_server(model_name, {**env, "GATEWAY_CACHE_MAX_BYTES": "0"}) as url:
            memory = _idle_memory(url)
            results, server = _run_loads(url, loads, args), _server_facts(url, model_name)
            paired = _paired(args, url, at_precision, model_name, corpus, groups)
            if "5" in groups:
                fairness = run_fairness_load(url, corpus, model_name, args.duration)
        if "4" in groups:
            with started_server(model_name, env) as url:  # the default cache
                cached = run_cache_load(url, corpus, model_name, args.quick)
    if not args.quick:  # a second pass, with the server stopped (or idle at --url)
        again = {dtype: measure_references(m, corpus, rerank_documents, groups)
                 for dtype, m in models.items()}
        references = {dtype: best_of(refs, again[dtype]) for dtype, refs in references.items()}
    context = (f"gateway bench: model {model_name}, {threads} torch threads, {os.cpu_count()} CPUs "
               f"({platform.machine()}, {platform.system()}), Python {platform.python_version()}, "
               f"torch {torch.__version__}, {server}{args.duration:g} s per load, "
               f"{time.strftime('%Y-%m-%d %H:%M')}")
    report = format_report(results, references["float32"], context, references.get(precision), precision,
                           memory)
    sections = [report] + ([format_paired(paired)] if paired else [])
    sections += [format_cache_load(cached)] if cached else []
    if "6" in groups:  # its own model (a SPLADE stand-in) and server, after the others
        sections.append(_sparse_section(args, threads))
    return "\n\n".join(sections + ([format_fairness_load(fairness)] if fairness else []))


def _paired(args: argparse.Namespace, url: str, model, model_name: str, corpus, groups: set[str]):
    """Load 1's lone requests paired with bare forward passes (``gateway.bench.paired``), or None
    without load 1."""
    if "1" not in groups:
        return None
    count = 40 if args.quick else PAIRED_REQUESTS
    return _event_loop_runner().run(run_paired(url, model, model_name, corpus.short[:count], count))


def _sparse_section(args: argparse.Namespace, threads: int) -> str:
    """Load 6 (``sparse_load``), run on a server of its own."""
    env = {"OMP_NUM_THREADS": str(threads)} if args.threads else {}
    return format_sparse_load(run_sparse_load(load_corpus(), args.duration, args.quick, env, args.requests))


def _idle_memory(url: str) -> str:
    """The served process's resident memory once ready and before any load, from its ``/health``."""
    try:
        memory = httpx.get(f"{url}/health", timeout=10).json()["memory"]
        mib = {k: f"{v / 2**20:.0f} MiB" if v else "?" for k, v in memory.items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return ""
    return (f"Server idle memory: RSS {mib['rss_bytes']} (anonymous {mib['anon_bytes']}, file-backed "
            f"{mib['file_bytes']}), peak {mib['peak_rss_bytes']}")


def _server_facts(url: str, model: str) -> str:
    """The server's batch budget, from its TEI ``/info`` (empty when it does not answer)."""
    try:
        info = httpx.get(f"{url}/info", params={"model": model}, timeout=10).json()
        return f"server batch_tokens {info['max_batch_tokens']}, "
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return ""


def _run_loads(url: str, loads: list[Load], args: argparse.Namespace) -> list[load_client.LoadResult]:
    async def all_loads() -> list[load_client.LoadResult]:
        return [await load_client.run_load(url, load, duration_s=args.duration, max_requests=args.requests,
                                           check=check_response) for load in loads]

    return _event_loop_runner().run(all_loads())


def _event_loop_runner() -> asyncio.Runner:
    """uvloop when installed (a cheaper client leaves more CPU to the server on the same machine)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def check_response(load: Load, body: bytes) -> None:
    """Raises AssertionError unless ``body`` answers ``load`` (row count, vector size, ranking size)."""
    answer = msgspec.json.decode(body)
    if load.path == "/v1/rerank":
        assert len(answer["results"]) == min(load.texts, RERANK_TOP_N), answer
        return
    rows = [row["embedding"] for row in answer["data"]]
    assert len(rows) == load.texts, f"{len(rows)} rows for {load.texts} inputs"
    sizes = {len(base64.b64decode(r)) // 4 if isinstance(r, str) else len(r) for r in rows}
    assert len(sizes) == 1 and sizes.pop() > 0, "rows of different sizes"


def _first_model(url: str) -> str:
    return httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]["id"]
