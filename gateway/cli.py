"""``gateway`` command line: ``gateway serve`` runs the server (``gateway bench`` measures it, ``gateway
embed`` embeds a file without one)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from gateway.engines.torch.threads import let_idle_openmp_threads_sleep


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI/Cohere-compatible embedding server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="bind address (GATEWAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (GATEWAY_PORT, default 8000)")
    serve.add_argument("--config", help="TOML config file (GATEWAY_CONFIG, default config/gateway.toml)")
    serve.add_argument("--model", help="serve only this model (GATEWAY_MODEL): hub repo id or local folder")
    serve.add_argument("--engine", choices=["auto", "torch", "mlx"], help="inference engine (GATEWAY_ENGINE)")
    serve.add_argument("--ray", action="store_true", help="deploy on Ray Serve, one deployment per model "
                       "(pip install \".[ray]\"); without --ray-address, on a local cluster")
    serve.add_argument("--ray-address", help="join this Ray cluster (default RAY_ADDRESS; implies --ray)")
    bench = sub.add_parser("bench", help="measure a server against in-process sentence-transformers")
    add_bench_arguments(bench)
    bench.add_argument("--ray", action="store_true", help="compare a Ray Serve deployment (1 and 2 model "
                       "replicas) with a plain gateway serve, on a local cluster (gateway.deploy.bench)")
    embed = sub.add_parser("embed", help="embed a file of texts (.txt/.jsonl/.csv/.parquet) into .npy, "
                           ".parquet or .jsonl, in-process or through a server (--url); resumable")
    add_embed_arguments(embed)
    ray_config = sub.add_parser("ray-config", help="write the Ray Serve config (YAML) for serve deploy or "
                                "KubeRay")
    add_ray_config_arguments(ray_config)
    pull = sub.add_parser("pull", help="download models from the Hugging Face hub ahead of time, with a "
                          "progress bar (HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE are honoured)")
    pull.add_argument("models", nargs="*", metavar="MODEL", help="hub repo ids (add @revision to pin one)")
    pull.add_argument("--config", help="every model of this TOML config, at its configured revision")
    return parser


# The subcommands' options are defined here, not beside their code: importing gateway.bench or
# gateway.deploy to build the parser cost `gateway serve` 9 MiB of idle memory (aiohttp, the Ray app).
def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gateway bench`` options (``gateway.bench.run.main``)."""
    from gateway.config import DEFAULT_MODEL

    parser.add_argument("--url", help="benchmark the server at this URL instead of starting one")
    parser.add_argument("--model", help=f"served model name (default: {DEFAULT_MODEL}, or the first model "
                        "the --url server lists)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load (default 10)")
    parser.add_argument("--requests", type=int, default=100_000, help="at most this many requests per load")
    parser.add_argument("--loads", default="1,2,3,4,5", help="load groups to run, e.g. 1,3 (default "
                        "1,2,3,4,5; 4: re-embedding a corpus with the embedding cache on; 5: one-text "
                        "requests while 6 clients keep 1,024-text requests queued; 6, only when named: "
                        "/embed_sparse of a MiniLM-sized SPLADE stand-in vs in-process SparseEncoder)")
    parser.add_argument("--threads", type=int, help="torch threads of the reference and of the started "
                        "server (default: torch's default, one per core)")
    parser.add_argument("--quick", action="store_true", help="smoke run: few loads, ~1 s each")


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gateway embed`` options (``gateway.bulk.run.main``)."""
    parser.add_argument("input", help="texts: .txt (a text a line), .jsonl (--field), .csv or .parquet "
                        "(--column)")
    parser.add_argument("-o", "--output", required=True, help="vectors: .npy (rows in input order), .parquet "
                        "(id, embedding) or .jsonl ({id, embedding} a line)")
    parser.add_argument("--field", "--column", dest="field", default="text", help="the text's JSON field or "
                        "column (default: text)")
    parser.add_argument("--id-field", "--id-column", dest="id_field", help="the id's field or column "
                        "(default: the line or row number)")
    parser.add_argument("--model", help="model to load (or, with --url, to ask for); default: the configured "
                        "one")
    parser.add_argument("--url", help="send the texts to the gateway server at this URL instead of loading "
                        "the model here")
    parser.add_argument("--api-key", help="with --url: the key (default GATEWAY_API_KEY or OPENAI_API_KEY)")
    parser.add_argument("--dimensions", type=int, help="Matryoshka size of the vectors")
    parser.add_argument("--chunk", type=int, default=256, help="texts per chunk, the unit saved for "
                        "--resume (default 256)")
    parser.add_argument("--concurrency", type=int, default=4, help="chunks in flight (default 4)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run, redoing no "
                        "finished chunk")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_ray_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gateway ray-config`` options (``--config``, ``--model`` etc. as for ``gateway serve``)."""
    parser.add_argument("--config", help="TOML config file to read (GATEWAY_CONFIG)")
    parser.add_argument("--model", help="serve only this model: hub repo id or folder on the cluster")
    parser.add_argument("--host", help="address Serve's HTTP proxies bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="their port (default 8000)")
    parser.add_argument("--cluster-config", help="instead of inlining the settings, read this TOML path "
                        "on the cluster")
    parser.add_argument("-o", "--output", help="write here instead of standard output")


def pull(args: argparse.Namespace) -> int:
    """``gateway pull MODEL[@REVISION]... [--config FILE]``: download each model into the hub cache
    (huggingface_hub's own progress bars on stderr), printing its local folder. Local folders and the
    embedded default model need nothing and are only printed.

    Returns:
        0 when every model is there, 1 when one failed (each failure on stderr), 2 for bad arguments.
    """
    from gateway.config import ConfigError, ModelConfig, load_settings
    from gateway.engines.sources import resolve_model_path

    configs = []
    for spec in args.models:
        repo, _, revision = spec.partition("@")
        configs.append(ModelConfig(name=repo, revision=revision or None))
    if args.config:
        try:
            configs += load_settings(config=args.config).served_models()
        except (ConfigError, FileNotFoundError) as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return 2
    if not configs:
        print("gateway pull: name models (MODEL[@REVISION]) or --config FILE", file=sys.stderr)
        return 2
    failed = 0
    for config in configs:
        source = config.source or config.name
        try:
            path = resolve_model_path(config)
        except Exception as exc:  # noqa: BLE001 - report each model, go on with the others
            print(f"gateway pull: {source}: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{source}{'@' + config.revision if config.revision else ''}: {path}")
    return 1 if failed else 0


def serve(args: argparse.Namespace) -> None:
    """Load settings (flags win over env, .env and the TOML file) and run uvicorn."""
    import uvicorn

    from gateway.config import ConfigError, load_settings
    from gateway.http.app import create_app
    from gateway.http.request_log import configure_logging
    from gateway.http.shutdown import DrainingHttpToolsProtocol, GatewayServer

    try:
        settings = load_settings(host=args.host, port=args.port, config=args.config, model=args.model,
                                 engine=args.engine)
    except (ConfigError, FileNotFoundError) as exc:  # a clean message and exit 2, not a traceback
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings)
    if args.ray or args.ray_address:
        from gateway.deploy.launch import serve_on_ray

        serve_on_ray(settings, args.ray_address)
        return
    from gateway.serving.lifecycle import limit_malloc_arenas, unloads_models

    if unloads_models(settings):  # before any thread starts (lifecycle.limit_malloc_arenas says why)
        limit_malloc_arenas()
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)  # process-wide: set by the server only
    app = create_app(settings)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; this handler makes that a clean exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # log_config=None: uvicorn's records go through our handler (JSON lines when log_format is json).
    # On SIGTERM uvicorn stops accepting, lets in-flight requests finish (for up to shutdown_timeout_s),
    # and only then runs the lifespan shutdown that stops the model runners; GatewayServer and its
    # protocol make sure no connection is accepted and then closed unanswered (gateway.http.shutdown).
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=False, log_config=None, http=DrainingHttpToolsProtocol,
                            timeout_graceful_shutdown=settings.shutdown_timeout_s,
                            timeout_keep_alive=settings.keep_alive_timeout_s)
    server = GatewayServer(config)
    try:
        server.run()
        code = 0 if server.started else 3  # uvicorn's STARTUP_FAILURE (e.g. the port is taken)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:  # Ctrl-C, re-raised by uvicorn once it has shut down
        code = 130
    exit_now(code)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def exit_now(code: int) -> None:
    """End the process once the server has shut down, without tearing down the interpreter.

    The requests are answered, the runners stopped and the logs flushed by then; Python's own teardown
    (a garbage collection over every object of torch, transformers and the loaded models) took 4 to 10 s
    on a loaded 2-core machine, during which the process had stopped serving but not yet exited.
    """
    import logging

    logging.shutdown()  # flushes every handler
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gateway`` console script."""
    let_idle_openmp_threads_sleep()
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    elif args.command == "bench" and args.ray:
        from gateway.deploy.bench import main as ray_bench

        ray_bench(args)
    elif args.command == "bench":
        from gateway.bench.run import main as bench

        bench(args)
    elif args.command == "embed":
        from gateway.bulk.run import main as embed

        embed(args)
    elif args.command == "pull":
        sys.exit(pull(args))
    elif args.command == "ray-config":
        from gateway.deploy.serve_config import main as ray_config

        ray_config(args)
    else:  # pragma: no cover - argparse rejects unknown commands
        sys.exit(2)
