"""The seed projects' fields on ``GET /health`` and ``GET /info``, added beside this server's own so that
clients of either keep working.

- ``/health`` (also embed-rerank's ``/health/``: Litestar ignores the trailing slash): tkr-embed's
  ``model_loaded``, ``framework``, ``device``, ``memory_usage_gb``, ``uptime_seconds``, and embed-rerank's
  ``uptime``, ``timestamp``, ``service``, ``backend``, ``system``, ``performance``. ``status`` stays this
  server's (``ok`` / ``degraded``, where the seeds said ``healthy``).
- ``/info`` (TEI's): tkr-embed's ``model_path``, ``framework``, ``mlx_version``, ``embedding_dim``,
  ``supported_modalities``, ``load_time``, ``memory_usage_gb`` (``quantization`` is already there).

Both describe the default text model (the first one that embeds text) and never raise: ``/health``
answers whatever the models' state.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from importlib import metadata

import msgspec
from litestar.datastructures import State

from gateway import __version__
from gateway.errors import GatewayError
from gateway.http.routes.model_choice import first_model
from gateway.serving.memory import process_memory
from gateway.serving.registry import Registry, ServedModel

GIB = 1024 ** 3
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # org/name, as the hub spells repo ids
FRAMEWORKS = {"mlx": "MLX", "torch": "PyTorch", "ray": "Ray Serve"}


def with_seed_fields(health: msgspec.Struct, state: State) -> dict:
    """``/health``'s body with the seed projects' fields added (its own fields win on a clash)."""
    return {**health_fields(state), **msgspec.to_builtins(health)}


def health_fields(state: State) -> dict:
    """tkr-embed's and embed-rerank's health fields (see the module docstring)."""
    registry: Registry = state.registry
    served = _default(registry)
    spec = served.engine.spec if served.engine else None
    uptime = time.monotonic() - state.started_monotonic
    framework = FRAMEWORKS.get(served.engine_name, served.engine_name)
    dim = spec.dim if spec else None
    return {
        "model_loaded": registry.all_ready, "framework": framework, "device": spec.device if spec else None,
        "memory_usage_gb": _memory_gb(), "uptime_seconds": round(uptime, 3),
        "uptime": round(uptime, 3), "timestamp": datetime.now().isoformat(),
        "service": {"name": "gateway", "version": __version__,
                    "description": "embedding and reranking server, embed-rerank and tkr-embed APIs"},
        "backend": {"name": served.engine_name, "type": served.engine_name, "status": served.state,
                    "model_loaded": served.state == "ready", "model_name": served.name,
                    "device": spec.device if spec else None,
                    "load_time": served.load_ms / 1000 if served.load_ms is not None else None},
        "system": _system_memory(),
        "performance": {"embedding_dimension": dim, "embedding_dim": dim,
                        "max_tokens": spec.max_tokens if spec else None},
    }


def info_fields(served: ServedModel) -> dict:
    """tkr-embed's ``/info`` fields for one served model."""
    spec = served.engine.spec if served.engine else None
    return {
        "model_path": _hub_id(served),
        "framework": FRAMEWORKS.get(served.engine_name, served.engine_name),
        "mlx_version": _version("mlx") if served.engine_name == "mlx" else None,
        "embedding_dim": spec.dim if spec else None,
        "supported_modalities": list(spec.modalities) if spec else None,
        "load_time": served.load_ms / 1000 if served.load_ms is not None else None,
        "memory_usage_gb": _memory_gb(),
    }


def _hub_id(served: ServedModel) -> str:
    """The model's Hugging Face repo id, or its served name when it comes from a local folder (whose path
    says nothing to a client and something about the server's disk)."""
    source = served.config.source
    return source if source and HUB_ID.fullmatch(source) else served.name


def _default(registry: Registry) -> ServedModel:
    try:  # by name, not registry.get: a health check names no model in the request's log and metrics
        name = first_model(registry, "text")
    except GatewayError:  # no text embedder (rerankers only)
        return registry.models[0]
    return next(m for m in registry.models if m.name == name)


def _memory_gb() -> float | None:
    rss = process_memory().rss_bytes
    return round(rss / GIB, 3) if rss is not None else None


def _system_memory() -> dict:
    """embed-rerank's ``system`` block: the machine's memory (``sysconf``; None where it does not tell)."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total, free = os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return {"memory_percent": None, "memory_available_gb": None, "memory_total_gb": None}
    return {"memory_percent": round(100 * (total - free) / total, 1),
            "memory_available_gb": round(free / GIB, 2), "memory_total_gb": round(total / GIB, 2)}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
