"""The production-test server: API keys, three models, JSON logs; and helpers to read its metrics and logs.

The server serves the embedded default model twice under different settings (``minilm-strict``:
``max_tokens = 16`` with ``truncation = "reject"``; ``minilm-query``: a ``query_prompt``) and a tiny
random cross-encoder (``tiny-reranker``). Keys are random per session, so a test can prove that
neither they nor request bodies ever reach the log.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from compat_tests.server import RunningServer

ADMIN_KEY = f"sk-admin-{secrets.token_hex(12)}"
QUERY_ONLY_KEY = f"sk-query-{secrets.token_hex(12)}"
METRICS_KEY = f"sk-metrics-{secrets.token_hex(12)}"
STRICT, QUERY, RERANKER = "minilm-strict", "minilm-query", "tiny-reranker"
QUERY_ALIAS = "mq"
QUERY_PROMPT = "query: "
DEFAULT_SOURCE = "sentence-transformers/all-MiniLM-L6-v2"


def write_config(workdir: Path, reranker_dir: Path) -> Path:
    """Write the server's TOML config to ``workdir`` and return its path."""
    path = workdir / "production.toml"
    path.write_text(f"""
log_format = "json"
metrics_api_key = "{METRICS_KEY}"

[[api_keys]]
key = "{ADMIN_KEY}"
name = "admin"

[[api_keys]]
key = "{QUERY_ONLY_KEY}"
name = "query-only"
models = ["{QUERY_ALIAS}"]

[[models]]
name = "{STRICT}"
source = "{DEFAULT_SOURCE}"
max_tokens = 16
truncation = "reject"

[[models]]
name = "{QUERY}"
aliases = ["{QUERY_ALIAS}"]
source = "{DEFAULT_SOURCE}"
query_prompt = "{QUERY_PROMPT}"

[[models]]
name = "{RERANKER}"
source = "{reranker_dir}"
task = "rerank"
""")
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def scrape(server: RunningServer, key: str = METRICS_KEY) -> dict[tuple[str, frozenset], float]:
    """``GET /metrics`` parsed: ``(sample name, frozenset of label items) -> value``."""
    response = httpx.get(f"{server.url}/metrics", headers=bearer(key), timeout=10)
    response.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def sample(metrics: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """The value of one sample (0 when it does not exist yet, as Prometheus treats absent counters)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


def json_records(server: RunningServer) -> list[dict]:
    """Every JSON line the server logged so far (other lines, e.g. from native libraries, are skipped)."""
    records = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def wait_for_record(server: RunningServer, match: Callable[[dict], bool], timeout_s: float = 10) -> dict:
    """The first JSON log record matching ``match``; the access line is written just after the response."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [r for r in json_records(server) if match(r)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no log record matched within {timeout_s} s:\n{server.log()[-3000:]}")


def access_record(server: RunningServer, request_id: str) -> dict:
    """The access log line of the request with ``request_id``."""
    return wait_for_record(
        server, lambda r: r.get("logger") == "gateway.access" and r.get("request_id") == request_id
    )
