"""Ollama's model routes, so Ollama-only apps accept the server: ``/api/version``, ``/api/tags``,
``/api/show`` and ``/api/ps``.

Spec: https://github.com/ollama/ollama/blob/main/docs/api.md (``ListModelResponse``, ``ShowResponse``,
``ProcessModelResponse`` and ``ModelDetails`` of Ollama's ``api/types.go``). What Ollama reads from a GGUF
file comes from the served model instead:

- ``name`` / ``model``: every served name and alias the caller's key may use, tagged ``:latest``;
  ``digest``: SHA-256 of the model's name, source and revision (stable across restarts, shared by aliases);
- ``details.family``: the transformers ``model_type``; ``parameter_size`` from the engine's weights;
  ``quantization_level``: ``F32`` / ``F16`` / ``BF16``, or the MLX quantization (``Q4``, ``Q8``);
  ``format``: the engine (``torch`` / ``mlx``); ``size``: weight bytes, estimated from those two;
- ``capabilities``: ``embedding`` (plus ``vision`` for image models), or ``rerank`` for cross-encoders;
- ``model_info``: ``general.*`` and ``<family>.context_length`` / ``<family>.embedding_length``;
- ``/api/ps``: every loaded model, never expiring (``expires_at`` far in the future).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from gateway.protocol.nulls import NullAsDefault


class ModelConfig(Protocol):
    """What these routes read of a model's ``[[models]]`` entry (``gateway.config.ModelConfig`` has it)."""

    name: str
    source: str | None
    revision: str | None
    task: str


class ModelSpec(Protocol):
    """What these routes read of a loaded model (``gateway.engines.ModelSpec`` has these fields)."""

    engine: str
    device: str
    architecture: str
    dtype: str
    quantization: str | None
    parameters: int
    max_tokens: int
    dim: int
    modalities: tuple[str, ...]


VERSION = "0.30.0"  # the Ollama release whose API shapes and messages these routes follow
NEVER = "9999-12-31T23:59:59Z"  # expires_at of models that never unload
BYTES_PER_WEIGHT = {"float32": 4, "float16": 2, "bfloat16": 2, "q8": 1, "q4": 0.5}


class ShowRequest(NullAsDefault, kw_only=True):
    """``POST /api/show`` body (``name`` is the older spelling of ``model``)."""

    model: str | None = ""
    name: str | None = ""
    verbose: bool | None = False


class ModelDetails(msgspec.Struct):
    parent_model: str
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str
    context_length: int
    embedding_length: int


class ListedModel(msgspec.Struct):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    capabilities: list[str]


class RunningModel(msgspec.Struct):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class ShowResponse(msgspec.Struct):
    modelfile: str
    parameters: str
    template: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str
    license: str = ""


def tagged(name: str) -> str:
    """``name`` with Ollama's default tag (``x`` -> ``x:latest``) unless it has a tag already."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def digest(config: ModelConfig) -> str:
    """A stable 64-hex-digit digest of the model: its name, source and revision."""
    identity = "\n".join([config.name, config.source or config.name, config.revision or ""])
    return hashlib.sha256(identity.encode()).hexdigest()


def timestamp(seconds: float) -> str:
    """Unix seconds as RFC 3339 in UTC (Ollama's ``modified_at``)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def details(spec: ModelSpec | None) -> ModelDetails:
    """``details`` of a model (mostly empty while it is not loaded)."""
    if spec is None:
        return ModelDetails("", "", "", None, "", "", 0, 0)
    family = spec.architecture
    level = (spec.quantization or {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}.get(spec.dtype)
             or spec.dtype).upper()
    families = [family] if family else None
    return ModelDetails("", spec.engine, family, families, parameter_size(spec.parameters), level,
                        spec.max_tokens, spec.dim)


def parameter_size(parameters: int) -> str:
    """``22.7M``, ``4.0B``: a parameter count the way Ollama prints it ("" when unknown)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= scale:
            return f"{parameters / scale:.1f}{unit}"
    return str(parameters) if parameters else ""


def size_bytes(spec: ModelSpec | None) -> int:
    """Bytes of the weights, estimated from the parameter count and their precision."""
    if spec is None:
        return 0
    return int(spec.parameters * BYTES_PER_WEIGHT.get(spec.quantization or spec.dtype, 4))


def capabilities(spec: ModelSpec | None, task: str) -> list[str]:
    """What Ollama apps filter models by: ``embedding`` (and ``vision``), or ``rerank``; none for a
    classifier (Ollama has no such capability, and it embeds nothing)."""
    if task == "rerank":
        return ["rerank"]
    if task == "classify":
        return []
    return ["embedding", "vision"] if spec is not None and "image" in spec.modalities else ["embedding"]


def listed(name: str, config: ModelConfig, spec: ModelSpec | None, started_at: float) -> ListedModel:
    """One ``/api/tags`` entry."""
    return ListedModel(tagged(name), tagged(name), timestamp(started_at), size_bytes(spec), digest(config),
                       details(spec), capabilities(spec, config.task))


def running(name: str, config: ModelConfig, spec: ModelSpec) -> RunningModel:
    """One ``/api/ps`` entry (GPU models count their weights as VRAM)."""
    size = size_bytes(spec)
    return RunningModel(tagged(name), tagged(name), size, digest(config), details(spec), NEVER,
                        0 if spec.device == "cpu" else size, spec.max_tokens)


def show(name: str, config: ModelConfig, spec: ModelSpec | None, started_at: float) -> ShowResponse:
    """``/api/show``'s answer for one model."""
    family = (spec.architecture if spec else "") or "unknown"
    info: dict[str, Any] = {"general.architecture": family, "general.basename": name}
    if spec is not None:
        info |= {"general.parameter_count": spec.parameters, f"{family}.context_length": spec.max_tokens,
                 f"{family}.embedding_length": spec.dim}
    modelfile = f"# served by gateway\nFROM {config.source or config.name}\n"
    parameters = f"num_ctx {spec.max_tokens}" if spec else ""
    return ShowResponse(modelfile, parameters, "", details(spec), info, capabilities(spec, config.task),
                        timestamp(started_at))
