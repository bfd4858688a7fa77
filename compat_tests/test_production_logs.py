"""Structured logs through the real server: one JSON access line per request, request ids, X-Process-Time,
and neither request bodies nor API keys ever in the log."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest

from compat_tests.production import (
    ADMIN_KEY,
    METRICS_KEY,
    QUERY,
    QUERY_ONLY_KEY,
    access_record,
    bearer,
    json_records,
    wait_for_record,
)


def embed(server, request_id: str | None = None, key: str = ADMIN_KEY,
          text: str = "hello there") -> httpx.Response:
    headers = {**bearer(key), **({"X-Request-ID": request_id} if request_id else {})}
    return httpx.post(f"{server.url}/v1/embeddings", headers=headers, timeout=60,
                      json={"model": QUERY, "input": [text, "general kenobi"]})


def test_the_access_line_is_json_with_the_request_facts(production_server):
    request_id = f"test-{secrets.token_hex(6)}"
    response = embed(production_server, request_id)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    record = access_record(production_server, request_id)
    assert record["level"] == "info"
    assert (record["method"], record["route"], record["path"]) == ("POST", "/v1/embeddings", "/v1/embeddings")
    assert (record["status"], record["model"], record["inputs"]) == (200, QUERY, 2)
    assert record["tokens"] == response.json()["usage"]["total_tokens"]
    assert record["api_key"] == "admin" and record["client"] == "127.0.0.1"
    assert 0 < record["duration_ms"] < 60_000


def test_a_request_id_is_generated_when_missing_or_unsafe(production_server):
    generated = embed(production_server).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert access_record(production_server, generated)["status"] == 200
    unsafe = embed(production_server, "forged id\" level=error").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)
    assert embed(production_server, "x" * 129).headers["x-request-id"] != "x" * 129


def test_failed_requests_are_logged_too(production_server):
    request_id = f"fail-{secrets.token_hex(6)}"
    assert embed(production_server, request_id, key="sk-wrong").status_code == 401
    record = access_record(production_server, request_id)
    assert (record["status"], record["model"], record["api_key"]) == (401, None, None)
    request_id = f"missing-{secrets.token_hex(6)}"
    httpx.get(f"{production_server.url}/nowhere", headers={"X-Request-ID": request_id})
    assert access_record(production_server, request_id)["route"] == "(unmatched)"


@pytest.mark.parametrize(("method", "path", "key"), [
    ("GET", "/health", None), ("GET", "/ready", None), ("GET", "/v1/models", ADMIN_KEY),
    ("GET", "/v1/models", None), ("GET", "/metrics", METRICS_KEY), ("GET", "/nowhere", None),
    ("POST", "/v1/embeddings", ADMIN_KEY),  # no body: 400
])
def test_every_response_carries_process_time_and_request_id(production_server, method, path, key):
    response = httpx.request(method, f"{production_server.url}{path}", headers=bearer(key) if key else {})
    assert 0 <= float(response.headers["x-process-time"]) < 60  # seconds
    assert response.headers["x-request-id"]


def test_bodies_and_keys_never_reach_the_log(production_server):
    marker = f"confidential-{secrets.token_hex(8)}"
    wrong_key = f"sk-guess-{secrets.token_hex(8)}"
    request_id = f"secret-{secrets.token_hex(6)}"
    assert embed(production_server, request_id, text=marker).status_code == 200
    assert embed(production_server, key=wrong_key, text=marker).status_code == 401
    assert embed(production_server, key=QUERY_ONLY_KEY, text=marker).status_code == 200
    httpx.get(f"{production_server.url}/metrics", headers=bearer(METRICS_KEY))
    access_record(production_server, request_id)
    log = production_server.log()
    for secret in (marker, wrong_key, ADMIN_KEY, QUERY_ONLY_KEY, METRICS_KEY):
        assert secret not in log


def test_every_log_line_is_a_json_object(production_server):
    lines = [line for line in production_server.log().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    startup = wait_for_record(production_server, lambda r: r["logger"] == "gateway.http.auth")
    assert "API keys required" in startup["message"]
    assert any(r["logger"].startswith("uvicorn") for r in json_records(production_server))


def test_an_open_server_says_so_at_start_up(server):
    """The default server has no keys and text logs: its start-up warns that every route is open."""
    warning = next(line for line in server.log().splitlines() if "No API keys configured" in line)
    assert " WARNING gateway.http.auth: " in warning
