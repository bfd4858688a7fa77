"""Where a lone one-text request's time goes, stage by stage, from the client's send to its last byte.

Starts ``gateway serve`` (cache off) in a child process that first wraps the functions a one-text
OpenAI request passes through with timestamps (``time.perf_counter``: CLOCK_MONOTONIC, comparable
between processes), sends ``--requests`` sequential one-text requests from one aiohttp connection as
``gateway bench``'s load generator does (the bench corpus's short texts, base64), and prints, per
stage, the median over the requests of the time since the client sent it, and the median step from the
previous stage. The wrappers add a few µs per stage; compare variants measured by this script only.
Variants (environment settings, ``;`` between them, as ``server_settings_ab.py`` takes them) alternate
``--rounds`` times, so a drifting machine hits each alike:

    python benchmarks/lone_request_timeline.py "PYTHONPATH=/tree/before;PYTHONPATH=/tree/after" --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (stage, where it is stamped): the order a request passes them
STAGES = [
    ("client send", "the load generator starts the request"),
    ("data received", "uvicorn's protocol gets the request's bytes"),
    ("app", "the ASGI app (RequestObserver) is called"),
    ("tokenize in", "service.tokenize starts (body decoded, route and admission done)"),
    ("tokenize out", ""),
    ("queued", "Runner.run queues the inputs"),
    ("lane took", "a lane thread took the batch"),
    ("forward in", "the engine's embed starts"),
    ("forward out", ""),
    ("lane settles", "Runner._settle: the rows are handed to the event loop"),
    ("loop resolves", "the event loop sets the request's result"),
    ("runner back", "Runner.run returns to the service"),
    ("vectors ready", "cancel_on_disconnect returns to the route"),
    ("response encoded", "openai.to_embedding_response is done"),
    ("head sent", "the response head reaches uvicorn's send"),
    ("body sent", "the body reaches uvicorn's send"),
    ("client done", "the load generator has read the whole response"),
]


def instrument(out_path: str) -> None:
    """In the server process: wrap each stage's function to record (stage, perf_counter); write the
    records to ``out_path`` when the server exits."""
    import functools

    import uvicorn.protocols.http.httptools_impl as http

    import gateway.cli as cli
    import gateway.engines.torch.engine as torch_engine
    import gateway.http.middleware as middleware
    import gateway.http.routes.common as common
    import gateway.http.routes.openai as openai_routes
    import gateway.serving.runner as runner
    import gateway.serving.service as service

    events: list[tuple[str, float]] = []

    def mark(stage: str) -> None:
        events.append((stage, time.perf_counter()))

    def around(owner, name: str, before: str | None, after: str | None) -> None:
        original = getattr(owner, name)
        if asyncio.iscoroutinefunction(original):
            @functools.wraps(original)
            async def wrapper(*args, **kwargs):
                if before:
                    mark(before)
                result = await original(*args, **kwargs)
                if after:
                    mark(after)
                return result
        else:
            @functools.wraps(original)
            def wrapper(*args, **kwargs):
                if before:
                    mark(before)
                result = original(*args, **kwargs)
                if after:
                    mark(after)
                return result
        setattr(owner, name, wrapper)

    around(http.HttpToolsProtocol, "data_received", "data received", None)
    around(service, "tokenize", "tokenize in", "tokenize out")
    around(runner.Runner, "run", "queued", "runner back")
    around(runner.Runner, "_take_batch", None, "lane took")
    around(runner.Runner, "_settle", "lane settles", None)
    around(runner, "_resolve", "loop resolves", None)
    around(torch_engine.TorchEngine, "embed", "forward in", "forward out")
    around(common, "cancel_on_disconnect", None, "vectors ready")
    openai_routes.cancel_on_disconnect = common.cancel_on_disconnect
    around(openai_routes.openai, "to_embedding_response", None, "response encoded")

    observe = middleware.RequestObserver.__call__

    async def observed(self, scope, receive, send):
        mark("app")

        async def stamped(message):
            mark({"http.response.start": "head sent"}.get(message["type"], "body sent"))
            await send(message)

        await observe(self, scope, receive, stamped)

    middleware.RequestObserver.__call__ = observed
    exit_now = cli.exit_now

    def dump_and_exit(code: int) -> None:
        Path(out_path).write_text(json.dumps(events))
        exit_now(code)

    cli.exit_now = dump_and_exit


def serve(out_path: str, args: list[str]) -> None:
    """The child process: instrument, then run ``gateway serve args``."""
    instrument(out_path)
    from gateway.cli import main

    sys.argv = ["gateway", "serve", *args]
    main()


def run_variant(env: dict[str, str], bodies: list[bytes], warm: int) -> list[dict[str, float]]:
    """Per measured request, each stage's ms since the client sent it (requests missing a stage are left
    out: a stage another path took, e.g. the packed forward pass)."""
    import aiohttp

    from gateway.bench.server import free_port, stop_process, wait_until_ready
    from gateway.config import DEFAULT_MODEL

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gateway-timeline-") as tmp:
        out_path = str(Path(tmp) / "events.json")
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", out_path, "--host", "127.0.0.1", "--port", str(port),
             "--model", DEFAULT_MODEL],
            env={**os.environ, "GATEWAY_CACHE_MAX_BYTES": "0", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        sent: list[tuple[float, float]] = []
        try:
            wait_until_ready(url, process)

            async def send_all() -> None:
                async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1)) as http:
                    for body in bodies:
                        start = time.perf_counter()
                        async with http.post("/v1/embeddings", data=body,
                                             headers={"content-type": "application/json"}) as response:
                            await response.read()
                            response.raise_for_status()
                        sent.append((start, time.perf_counter()))

            asyncio.run(send_all())
        finally:
            stop_process(process)
        events = json.loads(Path(out_path).read_text())
    rows = []
    for start, end in sent[warm:]:
        first: dict[str, float] = {}
        for stage, at in events:
            if start <= at <= end:
                first.setdefault(stage, (at - start) * 1000)
        first["client send"], first["client done"] = 0.0, (end - start) * 1000
        if all(stage in first for stage, _ in STAGES):
            rows.append(first)
    return rows


def print_blocks(label: str, rows: list[dict[str, float]], size: int) -> None:
    """Per block of ``size`` consecutive requests: median client round trip, forward pass, and the rest."""
    print(f"{label}, per block of {size}: median total / forward pass / rest, ms")
    for first in range(0, len(rows) - size + 1, size):
        block = rows[first:first + size]
        total = statistics.median(row["client done"] for row in block)
        forward = statistics.median(row["forward out"] - row["forward in"] for row in block)
        rest = statistics.median(row["client done"] - row["forward out"] + row["forward in"] for row in block)
        print(f"  {first:4d}: {total:6.2f} / {forward:6.2f} / {rest:5.2f}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="?", default="",
                        help='e.g. "GATEWAY_CPU_LANES=1;GATEWAY_CPU_LANES=2"')
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=0,
                        help="also print, per block of this many requests, the median total, forward pass "
                             "and rest (ms): does a drift come from the pass or from around it?")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from server_settings_ab import parse_variants  # a sibling script

    from gateway.bench.corpus import load_corpus
    from gateway.bench.loads import embedding_bodies
    from gateway.config import DEFAULT_MODEL

    count = args.warm + args.requests
    bodies = list(embedding_bodies(load_corpus().short, 1, DEFAULT_MODEL, "base64", count))
    variants = parse_variants(args.variants)
    columns = []
    for round_number in range(1, args.rounds + 1):
        for env in variants:
            rows = run_variant(env, bodies, args.warm)
            label = " ".join(f"{k}={v}" for k, v in env.items()) or "default"
            columns.append((f"round {round_number}: {label} ({len(rows)} requests)",
                            {stage: statistics.median(row[stage] for row in rows) for stage, _ in STAGES}))
            print(f"done: {columns[-1][0]}", file=sys.stderr, flush=True)
            if args.blocks:
                print_blocks(columns[-1][0], rows, args.blocks)
    print("ms since the client sent the request, median (step from the stage before)\n")
    print("| stage | " + " | ".join(name for name, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    previous = None
    for stage, _ in STAGES:
        cells = []
        for _, medians in columns:
            step = medians[stage] - medians[previous] if previous else 0.0
            cells.append(f"{medians[stage]:.3f} ({step:+.3f})")
        print(f"| {stage} | " + " | ".join(cells) + " |")
        previous = stage
    print("\nStages:\n" + "\n".join(f"- {stage}: {where}" for stage, where in STAGES if where))


if __name__ == "__main__":
    main()
