"""``gateway bench --ray``: the same loads against a plain ``gateway serve`` and against the gateway on Ray
Serve, in one run, so the table compares them on the same machine at the same time.

First the plain server (``gateway serve --model ...``, started and stopped here), then a local Ray cluster
with the model deployed with 1 replica (as many CPUs as the plain server has threads), then 2 replicas
(half each). ``ratio`` is Ray's texts/s over the plain server's. At concurrency 1, ``Δp50`` is what Ray adds
to a request's median latency: two Serve hops (HTTP proxy -> ingress replica, ingress -> model replica)
and the proxy's own HTTP handling. The handle round trip of a trivial call (this process -> a model
replica) is measured alone, as the cost of one hop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np

from gateway.bench import client as load_client
from gateway.bench.corpus import load_corpus
from gateway.bench.loads import Load, plan_loads
from gateway.bench.report import markdown_table
from gateway.bench.run import check_response
from gateway.bench.server import free_port, started_server, wait_until_ready
from gateway.config import DEFAULT_MODEL, ModelConfig, RayDeployment, load_settings

HOP_CALLS = 300


def main(args: argparse.Namespace) -> None:
    """Run the plain server, then Ray with 1 and 2 replicas; print the comparison (Markdown)."""
    import torch

    from gateway.bench.reference import fitting_documents, load_model

    if args.url:
        raise SystemExit("--ray starts its own servers; it does not take --url")
    groups = {g.strip() for g in args.loads.split(",") if g.strip()}
    if args.quick:
        args.duration, args.requests = min(args.duration, 1.0), min(args.requests, 40)
    threads = args.threads or torch.get_num_threads()
    model = args.model or DEFAULT_MODEL
    corpus = load_corpus()
    documents = fitting_documents(load_model(model, threads), corpus.mixed) if "3" in groups else []
    loads = plan_loads(corpus, documents, model, groups, args.quick)
    env = {"OMP_NUM_THREADS": str(threads)} if args.threads else {}
    # the loads cycle through their bodies: the embedding cache is off on both sides, so every answer is
    # computed (as in gateway bench's loads 1-3)
    with started_server(model, {**env, "GATEWAY_CACHE_MAX_BYTES": "0"}) as url:
        results = {"plain": run_loads(url, loads, args)}
    hop_ms = on_ray(model, threads, loads, args, results)
    print(report(loads, results, hop_ms, model, threads, args.duration), flush=True)


def on_ray(model: str, threads: int, loads: list[Load], args: argparse.Namespace,
           results: dict[str, list[load_client.LoadResult]]) -> list[float]:
    """Deploy on a local cluster with 1, then 2 replicas; adds their results; returns hop latencies (ms)."""
    from ray import serve

    from gateway.deploy.launch import connect, deploy, disconnect
    from gateway.deploy.ray_app import APP_NAME

    settings = load_settings(host="127.0.0.1", port=free_port(), cache_max_bytes=0)
    url = f"http://127.0.0.1:{settings.port}"
    local = connect(None)
    try:
        hop_ms: list[float] = []
        for replicas in (1, 2):
            cpus = max(1, threads // replicas)
            config = ModelConfig(name=model, ray=RayDeployment(replicas=replicas, cpus=cpus))
            if replicas > 1:  # other CPUs per replica: a rolling update would need room for old and new
                serve.delete(APP_NAME)
            deploy(settings.model_copy(update={"models": [config]}))
            wait_for_replicas(config, replicas)
            wait_until_ready(url, timeout_s=300)
            if replicas == 1:
                hop_ms = handle_round_trips(config)
            results[f"ray{replicas}"] = run_loads(url, loads, args)
        return hop_ms
    finally:
        disconnect(local)


def wait_for_replicas(config: ModelConfig, replicas: int, timeout_s: float = 600) -> None:
    """Until the model's deployment has exactly ``replicas`` replicas, all running (a rescale done)."""
    from ray import serve

    from gateway.deploy.ray_app import APP_NAME, deployment_name

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = serve.status().applications.get(APP_NAME)
        deployment = app.deployments.get(deployment_name(config)) if app else None
        if deployment is not None and dict(deployment.replica_states) == {"RUNNING": replicas}:
            return
        time.sleep(1)
    raise RuntimeError(f"the model did not reach {replicas} running replicas in {timeout_s:g} s")


def handle_round_trips(config: ModelConfig) -> list[float]:
    """Latencies (ms) of ``HOP_CALLS`` trivial calls through a deployment handle to a model replica."""
    from ray import serve

    from gateway.deploy.ray_app import APP_NAME, deployment_name

    handle = serve.get_deployment_handle(deployment_name(config), app_name=APP_NAME)
    handle.batch_tokens.remote().result()  # router warm-up
    latencies = []
    for _ in range(HOP_CALLS):
        start = time.perf_counter()
        handle.batch_tokens.remote().result()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def run_loads(url: str, loads: list[Load], args: argparse.Namespace) -> list[load_client.LoadResult]:
    """Every load against ``url``, one after the other."""
    async def all_loads() -> list[load_client.LoadResult]:
        return [await load_client.run_load(url, load, duration_s=args.duration, max_requests=args.requests,
                                           check=check_response) for load in loads]

    return asyncio.run(all_loads())


def report(loads: list[Load], results: dict[str, list[load_client.LoadResult]], hop_ms: list[float],
           model: str, threads: int, duration_s: float) -> str:
    """The comparison table, headed by the run's context and the handle round trip."""
    header = ("load", "sent per request", "conc", "plain texts/s", "Ray 1 replica texts/s", "ratio",
              "Ray 2 replicas texts/s", "ratio", "plain p50 ms", "Ray p50 ms", "Δp50 ms", "errors")
    rows = []
    for i, load in enumerate(loads):
        plain, one, two = results["plain"][i], results["ray1"][i], results["ray2"][i]
        single = load.concurrency == 1
        rows.append((load.group, load.label, str(load.concurrency), _num(plain.texts_per_s),
                     _num(one.texts_per_s), _ratio(one, plain), _num(two.texts_per_s), _ratio(two, plain),
                     _num(plain.percentile_ms(50)), _num(one.percentile_ms(50)),
                     f"{one.percentile_ms(50) - plain.percentile_ms(50):+.1f}" if single else "",
                     str(plain.errors + one.errors + two.errors)))
    p50, p99 = np.percentile(hop_ms, [50, 99])
    hop = (f"Ray Serve handle round trip (trivial call, this process -> model replica): p50 {p50:.2f} ms, "
           f"p99 {p99:.2f} ms over {len(hop_ms)} calls")
    context = (f"gateway bench --ray: model {model}, {threads} threads (Ray: 1 replica x {threads} CPUs, "
               f"2 replicas x {max(1, threads // 2)}), {os.cpu_count()} CPUs, {duration_s:g} s per load, "
               f"{time.strftime('%Y-%m-%d %H:%M')}")
    return "\n".join([context, "", hop, "", markdown_table(header, rows)])


def _ratio(result: load_client.LoadResult, base: load_client.LoadResult) -> str:
    return f"{result.texts_per_s / base.texts_per_s:.2f}" if base.texts_per_s else "-"


def _num(value: float) -> str:
    if np.isnan(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
