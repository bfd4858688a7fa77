"""One typed configuration for the server, read from a TOML file, environment variables and ``.env``.

Precedence, highest first: keyword arguments (the CLI flags), ``GATEWAY_*`` environment variables,
a ``.env`` file in the working directory, the TOML file (``--config`` / ``GATEWAY_CONFIG``,
default ``config/gateway.toml`` when it exists), then the defaults below. Every key is documented in
``.env.example``; model lists live in the TOML file (see ``config/example.toml``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES = ["all-MiniLM-L6-v2"]
DEFAULT_CONFIG_FILE = Path("config/gateway.toml")


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_keep_alive(value: object) -> float | None:
    """Seconds a model stays loaded after its last request, from a ``keep_alive`` value; None: forever.

    Ollama's rules (https://github.com/ollama/ollama/blob/main/docs/api.md, "keep_alive"; its
    ``api.Duration``): a number is seconds, a string is a Go duration (``"5m"``, ``"1h30m"``, ``"300ms"``,
    ``"-1m"``) or a bare number of seconds; anything negative means forever, ``0`` unload at once.
    ``"forever"``: forever. None: None (the caller's default applies).

    Raises:
        ValueError: not a number nor a duration (the message quotes it).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"keep_alive must be a duration or seconds, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("forever", "inf", "-1"):
            return None
        try:
            seconds = float(text)
        except ValueError:
            sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
            parts = _DURATION_PART.findall(body)
            if not body or "".join(n + u for n, u in parts) != body:
                raise ValueError(f"keep_alive {value!r} is not a duration (e.g. \"30s\", \"5m\", \"1h\", "
                                 "-1 or \"forever\")") from None
            seconds = sign * sum(float(n) * _DURATION_UNIT_S[u] for n, u in parts)
    else:
        raise ValueError(f"keep_alive must be a duration or seconds, not {value!r}")
    if seconds != seconds:  # NaN
        raise ValueError("keep_alive must be a number of seconds")
    return None if seconds < 0 or seconds == float("inf") else seconds


def parse_budget(value: object, *, total_memory: int, total_gpu_memory: int | None) -> int | None:
    """Bytes of ``model_memory_budget``: an integer, ``"8GiB"`` / ``"500MB"``, ``"60%"`` of
    ``total_memory`` or ``"60% gpu"`` of ``total_gpu_memory`` (bytes); None: no budget.

    Raises:
        ValueError: not bytes nor a share, a share outside (0, 100], or a GPU share with no GPU.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("model_memory_budget must be positive")
        return value
    if not isinstance(value, str):
        raise ValueError(f"model_memory_budget must be bytes or a share like \"60%\", not {value!r}")
    text = value.strip().lower()
    share = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%\s*(gpu|ram|memory)?", text)
    if share:
        percent = float(share.group(1))
        if not 0 < percent <= 100:
            raise ValueError("model_memory_budget as a share must be in (0, 100] %")
        if share.group(2) == "gpu":
            if not total_gpu_memory:
                raise ValueError("model_memory_budget is a share of GPU memory but no GPU is available")
            return int(total_gpu_memory * percent / 100)
        return int(total_memory * percent / 100)
    size = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not size or size.group(2) not in _BYTE_UNITS or float(size.group(1)) <= 0:
        raise ValueError(f"model_memory_budget {value!r} is not bytes (\"8GiB\", \"500MB\") nor a share "
                         "(\"60%\", \"60% gpu\")")
    return int(float(size.group(1)) * _BYTE_UNITS[size.group(2)])


class ConfigError(ValueError):
    """The configuration is wrong (an unknown TOML key, a bad value): the message names the key and file."""


# Tables of the TOML file refuse keys they do not know (a misspelt key would otherwise be ignored silently).
_STRICT = ConfigDict(extra="forbid")


class RayDeployment(BaseModel):
    """How one Ray Serve deployment runs (``gateway serve --ray``; ignored by a plain ``gateway serve``).

    Either a fixed ``replicas`` count or an autoscaling range (``min_replicas`` .. ``max_replicas``, scaled
    on ``target_ongoing_requests`` per replica); neither: one replica. See
    https://docs.ray.io/en/latest/serve/configure-serve-deployment.html

    Attributes:
        replicas: fixed number of replicas.
        min_replicas / max_replicas: autoscaling range (both needed; at least 1, so a model never scales
            to zero and ``/ready`` means what it says).
        target_ongoing_requests: requests in flight per replica the autoscaler aims for. High, because a
            model replica batches every request it holds into shared forward passes.
        cpus / gpus: logical Ray resources reserved per replica. A model replica's torch threads follow
            ``cpus`` (Ray sets ``OMP_NUM_THREADS``); default 1 for a model, 0 for the HTTP ingress (like
            Serve's own proxy).
        max_ongoing_requests: requests one replica holds at once. Ray's default of 5 starves
            cross-request batching, so the default is high; the model's ``max_queue_tokens`` still
            bounds its queue (429 beyond).
    """

    model_config = _STRICT

    replicas: int | None = Field(default=None, ge=1, description=(
        "Fixed number of replicas. Neither this nor an autoscaling range: one replica."))
    min_replicas: int | None = Field(default=None, ge=1, description=(
        "Autoscaling range, lower end (with `max_replicas`; at least 1, so a model never scales to zero "
        "and `/ready` means what it says)."))
    max_replicas: int | None = Field(default=None, ge=1, description=(
        "Autoscaling range, upper end (with `min_replicas`)."))
    target_ongoing_requests: float = Field(default=64, gt=0, description=(
        "Requests in flight per replica the autoscaler aims for. High, because a model replica batches "
        "every request it holds into shared forward passes."))
    cpus: float | None = Field(default=None, ge=0, description=(
        "Logical Ray CPUs reserved per replica; a model replica's torch threads follow it. Default: 1 for "
        "a model, 0 for the HTTP ingress (like Serve's own proxy)."))
    gpus: float = Field(default=0, ge=0, description="Logical Ray GPUs reserved per replica.")
    max_ongoing_requests: int = Field(default=1024, ge=1, description=(
        "Requests one replica holds at once. Ray's default of 5 starves cross-request batching; the "
        "model's `max_queue_tokens` still bounds its queue (429 beyond)."))

    @model_validator(mode="after")
    def _one_way_to_scale(self) -> RayDeployment:
        autoscaled = (self.min_replicas, self.max_replicas)
        if self.replicas is not None and any(v is not None for v in autoscaled):
            raise ValueError("set either replicas or min_replicas/max_replicas, not both")
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("an autoscaling range needs both min_replicas and max_replicas")
        if self.min_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class ModelConfig(BaseModel):
    """One served model.

    Attributes:
        name: the name clients send as ``model``.
        aliases: other names that route to the same model.
        source: Hugging Face repo id or local folder (default: ``name``).
        revision: hub revision (branch, tag or commit) when downloading.
        engine: ``auto`` | ``torch`` | ``mlx``; None inherits the server's ``engine``.
        task: ``embed`` (bi-encoder, also reranks by cosine), ``rerank`` (cross-encoder) or ``classify``
            (a sequence classifier: ``/classify``, ``/predict``). Unset, a classifier folder with named
            labels is served with ``classify`` (``engines.detect``), any other folder with ``embed``.
        pooling: override the model's pooling (``mean`` | ``cls`` | ``last``), MLX engine only.
        normalize: override whether embeddings are L2-normalized.
        max_tokens: cap on input length in model tokens (default: the model's own limit).
        truncation: ``truncate`` long inputs to ``max_tokens`` or ``reject`` them with a 400.
        max_active_dims: sparse models: top-k terms kept per vector (None: the model's own, else all).
        query_prompt / document_prompt: text prepended to queries / documents (e.g. Qwen3 instructions);
            default: the model's own sentence-transformers prompts named ``query`` / ``document``.
        device: torch device override (``cuda``, ``mps``, ``cpu``).
        dtype: number format of the forward pass: ``auto`` (the hardware's fast format, see
            ``gateway.engines.torch.precision``), ``float32``, ``bfloat16`` or ``float16``. Output vectors and
            scores are float32 whatever it is. None inherits the server's ``dtype`` (default ``auto``).
        quantize: MLX weight quantization at load: ``auto`` (only weights over a quarter of memory),
            ``none``, ``q8`` or ``q4``; pre-quantized folders load as they are. None inherits the server's
            ``quantize``.
        modalities: override what one input may hold (``["text"]`` or ``["text", "image"]``); default:
            detected from the model folder.
        ray: replicas and resources of this model's deployment on Ray Serve (``RayDeployment``).
    """

    model_config = _STRICT

    name: str = Field(description="The name clients send as `model`.")
    aliases: list[str] = Field(default_factory=list, description="Other names that route to the same model.")
    source: str | None = Field(default=None, description=(
        "Hugging Face repo id or local folder. Default: `name`."))
    revision: str | None = Field(default=None, description=(
        "Hub revision (branch, tag or commit) when downloading."))
    engine: Literal["auto", "torch", "mlx"] | None = Field(default=None, description=(
        "`auto` (MLX on Apple Silicon, else torch), `torch` or `mlx`. Default: the server's `engine`."))
    task: Literal["embed", "rerank", "classify"] = Field(default="embed", description=(
        "`embed` (a bi-encoder, which also reranks by cosine), `rerank` (a cross-encoder or a "
        "Qwen3-style reranker) or `classify` (a sequence classifier). Unset: `classify` for a classifier "
        "folder with named labels, else `embed`."))
    pooling: Literal["mean", "cls", "last"] | None = Field(default=None, description=(
        "Override the model's pooling (MLX engine only)."))
    normalize: bool | None = Field(default=None, description=(
        "Override whether embeddings are L2-normalized."))
    max_tokens: int | None = Field(default=None, gt=0, description=(
        "Cap on input length in model tokens. Default: the model's own limit."))
    truncation: Literal["truncate", "reject"] = Field(default="truncate", description=(
        "`truncate` long inputs to `max_tokens`, or `reject` them with a 400."))
    max_active_dims: int | None = Field(default=None, gt=0, description=(
        "Sparse models: keep each vector's this many largest terms (top-k, as sentence-transformers' "
        "`max_active_dims`); a request's `max_active_dims` may override it. Default: the model's own, else "
        "every non-zero term."))
    query_prompt: str | None = Field(default=None, description=(
        "Text prepended to queries (a vision-language model's instruction). Default: the model's own "
        "sentence-transformers prompt named `query`."))
    document_prompt: str | None = Field(default=None, description=(
        "Text prepended to documents. Default: the model's own sentence-transformers prompt named "
        "`document`."))
    device: str | None = Field(default=None, description="torch device override (`cuda`, `mps`, `cpu`).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(default=None, description=(
        "Number format of the forward pass: `auto` (the hardware's fast format), `float32`, `bfloat16` or "
        "`float16`. Vectors and scores are float32 whatever it is. Default: the server's `dtype`."))
    quantize: Literal["auto", "none", "q8", "q4"] | None = Field(default=None, description=(
        "MLX weight quantization at load: `auto` (only weights over a quarter of memory), `none`, `q8` or "
        "`q4`; pre-quantized folders load as they are. Default: the server's `quantize`."))
    modalities: list[Literal["text", "image"]] | None = Field(default=None, description=(
        "Override what one input may hold (`[\"text\"]` refuses images). Default: detected from the "
        "model folder."))
    ray: RayDeployment = Field(default_factory=RayDeployment, description=(
        "Replicas and resources of this model's deployment on Ray Serve (`[models.ray]`)."))
    load: Literal["startup", "on_demand"] = Field(default="startup", description=(
        "`startup`: loaded when the server starts (`/ready` waits for it); `on_demand`: loaded by the "
        "first request that names it (that request and any arriving meanwhile wait for the one load)."))
    keep_alive: str | float | None = Field(default=None, description=(
        "How long the model stays loaded after its last request: a duration (`\"30s\"`, `\"5m\"`, "
        "`\"1h30m\"`) or seconds; `-1` or `\"forever\"`: never unloaded for idleness; `0`: unloaded after "
        "each request. Default: forever for `startup` models, `\"5m\"` for `on_demand` ones."))
    pinned: bool = Field(default=False, description=(
        "Never evicted to make room under `model_memory_budget` (still unloaded by its `keep_alive` or "
        "by the admin API)."))

    @field_validator("keep_alive")
    @classmethod
    def _valid_keep_alive(cls, value: object) -> object:
        parse_keep_alive(value)  # raises ValueError naming the problem
        return value

    @property
    def served_names(self) -> list[str]:
        """The name followed by its aliases."""
        return [self.name, *self.aliases]


class ApiKey(BaseModel):
    """One API key (``[[api_keys]]`` in the TOML file; ``GATEWAY_API_KEYS`` gives unrestricted ones).

    Attributes:
        key: the secret clients send as ``Authorization: Bearer <key>``; never logged or printed.
        name: a label for logs (default ``key-<n>``, its position in the list).
        models: served names or aliases this key may use; None (the default) allows every model.
        rpm: requests per minute this key may send to POST routes; None: ``rate_limit_rpm``.
        tpm: model tokens per minute (the tokens usage reports) this key may spend; None:
            ``rate_limit_tpm``. Keys sharing a ``name`` share one quota (``gateway.serving.rate_limits``).
    """

    model_config = _STRICT

    key: SecretStr = Field(min_length=1, description=(
        "The secret clients send as `Authorization: Bearer <key>`; never logged or printed."))
    name: str | None = Field(default=None, description=(
        "A label for logs and metrics. Default: `key-<n>`, its position in the list."))
    models: list[str] | None = Field(default=None, description=(
        "Served names or aliases this key may use (other models: 403). Default: every model."))
    rpm: int | None = Field(default=None, gt=0, description=(
        "Requests per minute this key may send to POST routes. Default: `rate_limit_rpm`."))
    tpm: int | None = Field(default=None, gt=0, description=(
        "Model tokens per minute (the tokens usage reports) this key may spend. Default: `rate_limit_tpm`. "
        "Keys sharing a `name` share one quota."))
    admin: bool = Field(default=False, description=(
        "May call the admin API (`/admin/...`: list, load, unload models, reload the config). Without "
        "any key configured the admin API is open, like every route."))

    def label(self, position: int) -> str:
        """The key's name in logs and metrics: ``name``, else ``key-<position>`` (1-based, in the list)."""
        return self.name or f"key-{position}"


class Settings(BaseSettings):
    """Server settings (see the module docstring for where each value comes from)."""

    # extra="ignore": unknown GATEWAY_* variables (the environment is shared) never stop the server;
    # unknown keys of the TOML file do (StrictTomlSource).
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    host: str = Field(default="127.0.0.1", description=(
        "Bind address (`0.0.0.0` to listen on every interface)."))
    port: int = Field(default=8000, ge=0, le=65535, description="Port.")
    config: Path | None = Field(default=None, description=(
        "TOML file with `[[models]]` and any setting of this table. Default: `config/gateway.toml` when it "
        "exists."))
    model: str | None = Field(default=None, description=(
        "Serve only this model (Hugging Face repo id or local folder) instead of the configured ones. "
        "Default: the configured models, else the embedded default."))
    engine: Literal["auto", "torch", "mlx"] = Field(default="auto", description=(
        "Default engine: `auto` (MLX on Apple Silicon when installed, else torch), `torch` or `mlx`."))
    # default number format / MLX quantization of models that set none (ModelConfig.dtype / quantize)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(default="auto", description=(
        "Number format of the forward pass of models that set no `dtype`: `auto` (bfloat16 on CPUs with "
        "AMX / AVX512-BF16, bfloat16 or float16 on CUDA, float16 on MPS, else float32), `float32`, "
        "`bfloat16`, `float16`. Vectors and scores are float32 whatever it is."))
    quantize: Literal["auto", "none", "q8", "q4"] = Field(default="auto", description=(
        "MLX weight quantization at load of models that set no `quantize`: `auto` (full precision unless "
        "the weights exceed a quarter of memory, then 8-bit, else 4-bit), `none`, `q8`, `q4`. Pre-quantized "
        "folders load as they are."))
    models: list[ModelConfig] = Field(default_factory=list, description=(
        "The served models (`[[models]]` tables in the TOML file; the model table below)."))

    log_level: str = Field(default="info", description=(
        "Level of every logger: `debug`, `info`, `warning`, `error`."))
    log_format: Literal["text", "json"] = Field(default="text", description=(
        "`text`, or `json`: one JSON object per line, with one access line per request (request_id, "
        "route, model, inputs, tokens, status, duration_ms). Request bodies and API keys are never logged."))

    # Limits
    # docs/limits.md gives the reason for each default
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description=(  # 2048 inputs of ~4 KB
        "Largest request body in bytes; larger: 413."))
    max_json_depth: int = Field(default=32, gt=0, description=(  # wire formats nest 4; decoders recurse
        "Deepest nesting of JSON arrays and objects in a body, measured before it is decoded; deeper: 400."))
    max_inputs_per_request: int = Field(default=2048, gt=0, description=(
        "Most inputs in one request; more: 400."))
    max_tokens_per_request: int = Field(default=300_000, gt=0, description=(  # OpenAI's per-request cap
        "Most model tokens in one request, counted after truncation; more: 400."))
    max_rerank_documents: int = Field(default=10_000, gt=0, description=(
        "Most documents in one rerank request; more: 400."))
    request_timeout_s: float = Field(default=300.0, gt=0, description=(
        "Seconds a request may wait for its model (queue and forward passes); longer: 408."))
    shutdown_timeout_s: float = Field(default=30.0, ge=0, description=(
        "On SIGTERM: stop accepting, then wait this many seconds for in-flight requests."))
    # idle keep-alive connections stay open this long: longer than client pools keep them (httpx 5 s,
    # aiohttp 15 s), so the client closes first; at uvicorn's 5 s a request sent on a connection the
    # server was closing died unanswered (docs/production.md)
    keep_alive_timeout_s: float = Field(default=75.0, gt=0, description=(
        "Seconds idle keep-alive connections stay open: longer than client pools keep them (httpx 5 s, "
        "aiohttp 15 s), so a client never sends a request on a connection the server is closing."))
    # how long a thread may hold the GIL before one waiting for it gets it: the event loop waits up to this
    # per wake-up while tokenizer, lane and response threads run Python; at CPython's 5 ms a /health probe
    # beside maximum-size requests took 21-43 ms at p99, at 1 ms 13-25 ms, throughput within 3%
    # (docs/limits.md)
    gil_switch_interval_ms: float = Field(default=1.0, gt=0, le=100, description=(
        "Milliseconds a thread may hold the GIL while another waits for it (Python's switch interval; "
        "CPython's default is 5). Shorter keeps the event loop answering while big requests are encoded "
        "and tokenized in other threads."))

    # Batching
    # padded tokens per forward pass; None: by device (2048 on CPU, 16384 on a GPU: batching.py)
    batch_tokens: int | None = Field(default=None, gt=0, description=(
        "Padded tokens (longest input x count) per forward pass. Default: 2048 on CPU, 16384 on a GPU."))
    max_queue_tokens: int = Field(default=4_000_000, gt=0, description=(
        "Tokens allowed to wait per model; beyond it new requests get 429 with Retry-After."))
    # seconds the queue may take to drain (at the measured speed) before 429: a bounded wait on any machine
    max_queue_wait_s: float = Field(default=60.0, gt=0, description=(
        "Seconds the model's queue may take to drain at its measured speed; a request that would wait "
        "longer gets 429 with Retry-After at once."))
    # forward passes of one model running at once on CPU, each on its share of the cores; None: 2 for
    # torch when it has 2+ threads (batching.py: small batches use cores better side by side)
    cpu_lanes: int | None = Field(default=None, gt=0, description=(
        "Torch on CPU: forward passes of one model running side by side, each on its share of the cores. "
        "Default: 2 with 2+ threads."))
    # an eager pass takes the GIL back between its ~200 operators; a traced one runs without it
    torchscript: bool = Field(default=True, description=(
        "Torch on CPU: run BERT embedders, cross-encoders and classifiers as one TorchScript graph (traced "
        "at load and checked against the eager model; eager where it differs): no GIL during a pass, "
        "10-25% faster passes."))

    # Security
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list, description=(
        "API keys: comma-separated unrestricted keys, `[[api_keys]]` tables (the key table below), or in "
        "the environment a JSON list of such tables. "
        "When set, every route but `/health` and `/ready` needs `Authorization: Bearer <key>`. "
        "Empty: the server is open (a warning is logged at start-up)."))
    metrics_api_key: SecretStr | None = Field(default=None, description=(
        "When set, `GET /metrics` takes this key and only this one; else it is protected like the rest."))
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "CORS: browser origins allowed to call the API (`*`: any). Empty: no CORS headers."))
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "Trusted Host headers (exact names or `*.example.com`; ports ignored); others get 400 (`/health` "
        "and `/ready` answer any host). Empty: any host."))
    # Rate limits (docs/limits.md#rate-limits): per key without its own rpm/tpm, or one quota shared by every
    # client when no keys are set; None: unlimited
    rate_limit_rpm: int | None = Field(default=None, gt=0, description=(
        "Requests per minute on POST routes, per API key without its own `rpm` (with no keys: one quota "
        "shared by every client). Default: unlimited."))
    rate_limit_tpm: int | None = Field(default=None, gt=0, description=(
        "Model tokens per minute (as usage counts them), per API key without its own `tpm` (with no keys: "
        "one quota shared by every client). Default: unlimited."))
    ui: bool = Field(default=True, description=(
        "Serve the browser console at `GET /ui` (docs: Console); `false`: `/ui` answers 404. Its data "
        "comes from the API routes, behind the same keys."))

    # Images (gateway.media; docs/images.md says why these defaults)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description=(
        "Largest encoded image in bytes (after base64 decoding, or as fetched), checked before decoding; "
        "larger: 400."))
    max_image_pixels: int = Field(default=50_000_000, gt=0, description=(
        "Most pixels (width x height) of one image, read from its header before decoding; more: 400."))
    max_image_aspect_ratio: float = Field(default=200.0, ge=1, description=(
        "Longest side / shortest side of an image; more elongated: 400."))
    max_request_image_pixels: int = Field(default=200_000_000, gt=0, description=(
        "Most decoded pixels of all images of one request together; more: 400."))
    image_fetch_enabled: bool = Field(default=False, description=(
        "Fetch http(s) image URLs. Off: a URL is refused. File paths and `file:` URLs are never read."))
    image_fetch_allowed_domains: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "Hosts image URLs may name (exact, `*.example.com` for subdomains, `*` for any public host); a host "
        "resolving to a non-public address is refused anyway. Empty: none."))
    image_fetch_timeout_s: float = Field(default=10.0, gt=0, description=(
        "Deadline in seconds for fetching one image (DNS, connect and every byte)."))

    # Embedding cache (gateway.serving.embedding_cache; docs/cache.md)
    cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=0, description=(
        "Bytes of vectors kept per model in an in-memory LRU; `0` turns the cache off."))
    cache_scope: Literal["key", "shared"] = Field(default="key", description=(
        "`key`: one cache per API key (a tenant never learns what another embedded); `shared`: one for "
        "every key."))
    cache_redis_url: str | None = Field(default=None, description=(
        "Redis instead of the in-memory LRU (e.g. `redis://127.0.0.1:6379/0`), so replicas share one "
        "cache. Default: in memory."))
    cache_redis_timeout_s: float = Field(default=0.25, gt=0, description=(
        "Seconds one Redis call may take; a Redis that is down costs a request at most this."))
    cache_redis_retry_s: float = Field(default=5.0, ge=0, description=(
        "After a Redis error, serve without the cache for this many seconds before trying again."))

    # Bulk jobs (OpenAI's Files and Batch APIs: gateway.serving.jobs; docs/batches.md)
    data_dir: Path | None = Field(default=None, description=(
        "Folder of the durable state: uploaded files, batch outputs and the SQLite database of jobs. "
        "Default: the per-user data folder (`~/.local/share/gateway`, or `$XDG_DATA_HOME/gateway`; "
        "`~/Library/Application Support/gateway` on macOS)."))
    batch_max_file_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description=(
        "Largest file `POST /v1/files` takes, in bytes (OpenAI's limit for batch input); larger: 413."))
    batch_max_lines: int = Field(default=50_000, gt=0, description=(
        "Most request lines in one batch input file (OpenAI's limit); more: 400 at upload."))
    batch_tpm_share: float = Field(default=0.0, ge=0, le=1, description=(
        "Share (0-1) of a batch line's tokens charged to its API key's `tpm` quota. Default 0: batch work "
        "has a quota of its own, as OpenAI's batch quota is separate from the online one."))

    # Several models on one machine (gateway.serving.lifecycle; docs/lifecycle.md)
    model_memory_budget: int | str | None = Field(default=None, description=(
        "Bytes the loaded models' weights may take together (an integer, or `\"8GiB\"`, `\"500MB\"`), or a "
        "share of the machine's memory (`\"60%\"`) or of the first GPU's (`\"60% gpu\"`). Before a load "
        "would exceed it the least recently used idle, unpinned model is unloaded; if none can be, the "
        "request gets 503 with Retry-After. Sizes come from the safetensors headers. Default: no budget."))

    # MLX
    mlx_memory_fraction: float | None = Field(default=None, gt=0, le=1, description=(
        "Cap MLX's memory to this share (0-1] of the machine's. Default: no cap."))

    # Ray Serve (gateway serve --ray): the HTTP ingress deployment, and where Serve runs HTTP proxies
    ray_ingress: RayDeployment = Field(default_factory=RayDeployment, description=(
        "The HTTP ingress deployment on Ray Serve (`[ray_ingress]`, the Ray table below)."))
    ray_proxy_location: Literal["EveryNode", "HeadOnly"] = Field(default="EveryNode", description=(
        "Where Serve runs its HTTP proxies: `EveryNode` (each node listens on host:port) or `HeadOnly`."))

    @field_validator("model_memory_budget")
    @classmethod
    def _valid_budget(cls, value: object) -> object:
        parse_budget(value, total_memory=1, total_gpu_memory=1)  # the syntax only: raises ValueError
        return value

    @field_validator("api_keys", "allowed_origins", "allowed_hosts", "image_fetch_allowed_domains",
                     mode="before")
    @classmethod
    def _split_commas(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and info.field_name == "api_keys" and value.lstrip().startswith("["):
            try:  # a JSON list of keys: [{"key": ..., "name": ..., "models": [...]}, ...]
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list of keys ({exc.msg})") from None
        elif isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if info.field_name == "api_keys" and isinstance(value, list):  # bare strings: unrestricted keys
            return [{"key": item} if isinstance(item, str) else item for item in value]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file(init_settings)
        sources = [init_settings, env_settings, dotenv_settings]
        if toml_file is not None:
            sources.append(StrictTomlSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def served_models(self) -> list[ModelConfig]:
        """The models to load: ``model`` if set, else ``models``, else the embedded default; a model that
        sets no ``dtype`` / ``quantize`` gets the server's."""
        if self.model:
            models = [ModelConfig(name=self.model)]
        elif self.models:
            models = self.models
        else:
            models = [ModelConfig(name=DEFAULT_MODEL, aliases=DEFAULT_ALIASES)]
        return [m.model_copy(update={"dtype": m.dtype or self.dtype, "quantize": m.quantize or self.quantize})
                for m in models]


class StrictTomlSource(TomlConfigSettingsSource):
    """The TOML file, refusing top-level keys that are not settings (nested tables refuse theirs through
    ``extra="forbid"`` on their models).

    Raises:
        ConfigError: naming the unknown key and the file.
    """

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        super().__init__(settings_cls, toml_file=toml_file)
        unknown = [key for key in self.toml_data if key not in settings_cls.model_fields or key == "config"]
        if unknown:
            raise ConfigError(f"{toml_file}: unknown key {unknown[0]!r} at the top level (see "
                              "config/example.toml for the keys there are)")


def _config_file(init_settings: PydanticBaseSettingsSource) -> Path | None:
    """The TOML file to read: the ``config`` init argument, ``GATEWAY_CONFIG``, or the default file."""
    explicit = init_settings().get("config") or os.environ.get("GATEWAY_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(**overrides: object) -> Settings:
    """Build the settings; ``overrides`` (CLI flags) win over every other source. None values are ignored.

    Raises:
        FileNotFoundError: an explicitly named config file does not exist.
        ConfigError: an unknown key in the TOML file, or a setting with an invalid value (naming the key,
            and the TOML file when one was read).
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        toml_file = overrides.get("config") or os.environ.get("GATEWAY_CONFIG")
        if not toml_file and DEFAULT_CONFIG_FILE.is_file():
            toml_file = DEFAULT_CONFIG_FILE
        raise ConfigError(describe_errors(exc, toml_file)) from None


def describe_errors(exc: ValidationError, toml_file: object) -> str:
    """One line per invalid setting, e.g. ``models[0].max_token: unknown key``, under the file's name."""
    lines = []
    for error in exc.errors():
        parts = (f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        key = "".join(parts).lstrip(".")
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"  {key}: {message}")
    where = f" (from {toml_file}, the environment and .env)" if toml_file else ""
    return f"invalid configuration{where}:\n" + "\n".join(lines)
