"""``gateway`` command line: ``gateway serve`` runs the server (``gateway bench`` measures it)."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI/Cohere-compatible embedding server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="bind address (GATEWAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (GATEWAY_PORT, default 8000)")
    serve.add_argument("--config", help="TOML config file (GATEWAY_CONFIG, default config/gateway.toml)")
    serve.add_argument("--model", help="serve this model instead (GATEWAY_MODEL): hub repo id or local folder")
    serve.add_argument("--engine", choices=["auto", "torch", "mlx"], help="inference engine (GATEWAY_ENGINE)")
    return parser


def serve(args: argparse.Namespace) -> None:
    """Load settings (flags win over env, .env and the TOML file) and run uvicorn."""
    import uvicorn

    from gateway.app import create_app
    from gateway.config import load_settings

    settings = load_settings(host=args.host, port=args.port, config=args.config, model=args.model,
                             engine=args.engine)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gateway`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    else:  # pragma: no cover - argparse rejects unknown commands
        sys.exit(2)
