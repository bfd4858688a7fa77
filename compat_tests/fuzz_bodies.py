"""Seeded generator of hostile request bodies for every POST route (``test_fuzz.py``).

Each body starts from a plausible request of its route (``TEMPLATES``; a route without one gets the union
of every template's fields, so a new route is fuzzed too) and is then broken: a field replaced by a
hostile value (wrong type, null, huge or negative number, deep nesting, enormous or invalid string, empty
list), fields added or removed, or the encoded body itself cut short, filled with invalid UTF-8, nested
thousands deep or replaced by garbage.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["hello world", "a second text"]
TEMPLATES: dict[str, dict] = {
    "/v1/embeddings": {"model": MODEL, "input": TEXTS, "encoding_format": "float", "dimensions": 8},
    "/embeddings": {"model": MODEL, "input": "hello", "user": "u"},
    "/v1/embed": {"model": MODEL, "texts": TEXTS, "input_type": "search_query", "truncate": "END"},
    "/v2/embed": {"model": MODEL, "texts": TEXTS, "input_type": "search_document",
                  "embedding_types": ["float"]},
    "/embed": {"inputs": TEXTS, "normalize": True, "truncate": True},
    "/": {"inputs": "hello", "truncation_direction": "Right"},
    "/tokenize": {"inputs": TEXTS, "add_special_tokens": True},
    "/decode": {"ids": [101, 7592, 102], "skip_special_tokens": True},
    "/rerank": {"query": "q", "texts": ["a", "b"], "raw_scores": False, "return_text": True},
    "/v1/rerank": {"model": MODEL, "query": "q", "documents": ["a", "b"], "top_n": 1,
                   "return_documents": True},
    "/v2/rerank": {"model": MODEL, "query": "q", "documents": ["a", "b"], "max_tokens_per_doc": 64},
    "/v1/multimodalembeddings": {"model": MODEL, "inputs": [{"content": [{"type": "text", "text": "hi"}]}],
                                 "input_type": "query"},
    "/api/embed": {"model": MODEL, "input": TEXTS, "truncate": True, "options": {"temperature": 0}},
    "/api/embeddings": {"model": MODEL, "prompt": "hello", "keep_alive": "5m"},
    "/api/rerank": {"model": MODEL, "query": "q", "documents": ["a", "b"], "top_n": 2},
    "/api/show": {"model": MODEL},
    "/embed_sparse": {"inputs": TEXTS, "truncate": True, "truncation_direction": "Left",
                      "prompt_name": "query", "max_active_dims": 4},
    "/embed_all": {"inputs": TEXTS, "truncate": True, "prompt_name": "query"},
    "/pooling": {"model": MODEL, "input": TEXTS, "task": "token_embed", "encoding_format": "float"},
    # MiniLM scores pairs as a bi-encoder; it classifies nothing (test_classify_score fuzzes a classifier)
    "/classify": {"model": MODEL, "input": TEXTS, "truncate_prompt_tokens": 8},
    "/v1/classify": {"model": MODEL, "input": "hello", "user": "u"},
    "/predict": {"inputs": [["a", "b"], ["c"]], "raw_scores": False, "truncate": True},
    "/score": {"model": MODEL, "text_1": "q", "text_2": TEXTS, "truncate_prompt_tokens": -1},
    "/v1/score": {"model": MODEL, "text_1": TEXTS, "text_2": TEXTS},
}
# also on the OpenAI route: dialect fields (Jina, Voyage, Mistral), some with hostile values below
EXTRA_FIELDS = {"late_chunking": True, "task": "retrieval.query", "embedding_type": "float",
                "normalized": True, "output_dimension": 8, "output_dtype": "int8", "truncation": True,
                "input_type": "query", "encoding_format": "base64", "dimensions": 4}


@dataclass(slots=True)
class Case:
    path: str
    body: bytes
    content_type: str | None
    kind: str  # what was broken, for failure messages


def template(path: str, templates: dict[str, dict] | None = None) -> dict:
    templates = TEMPLATES if templates is None else templates
    if path in templates:
        return templates[path]
    merged: dict = {}
    for body in templates.values():
        merged.update(body)
    return merged


def hostile_value(rng: random.Random, depth: int = 0):
    choice = rng.randrange(22)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, -2**31, 2**31, 2**63, 10**40, -10**40])
    if choice == 3:
        return rng.choice([1e308, -1e308, 0.5, -0.0, 1e-320])
    if choice == 4:
        return rng.choice(["", " ", "\u0000", "\ud800", "x" * rng.choice([1000, 100_000, 1_500_000])])
    if choice == 5:
        return []
    if choice == 6:
        return {}
    if choice == 7:
        return [[]] * rng.randrange(1, 5)
    if choice == 8:
        return [rng.randrange(-5, 40000) for _ in range(rng.choice([1, 10, 5000]))]
    if choice == 9:
        return [[rng.randrange(-5, 40000) for _ in range(5)] for _ in range(3)]
    if choice == 10:
        return nested(rng.choice([10, 40, 200]), rng.choice(["[]", "{}"]))
    if choice == 11:
        return ["ok"] * rng.choice([2049, 5000])
    if choice == 12:
        return [None, "a", 1]
    if choice == 13:
        return {"type": rng.choice(["text", "image_url", "image_base64", "bogus"]), "text": None,
                "image_url": rng.choice(["data:image/png;base64,AAAA", "http://127.0.0.1/x.png",
                                         "/etc/passwd", "data:image/png;base64," + "A" * 5000, 7])}
    if choice == 14:
        return [{"content": hostile_value(rng, depth + 1)}] if depth < 3 else []
    if choice == 15:
        return rng.choice(["NONE", "START", "END", "Left", "float", "binary", "ubinary", "int8", "base64",
                           "search_query", "classification", "unknown", "-1", "1e9"])
    if choice == 16:
        return "\u202e\U0001f600" * rng.randrange(1, 300)
    if choice == 17:
        return [hostile_value(rng, depth + 1) for _ in range(3)] if depth < 3 else "x"
    if choice == 18:
        return {"a": hostile_value(rng, depth + 1)} if depth < 3 else 1
    if choice == 19:
        return rng.choice(["日本語のテキスト" * 400, "ok", "query: x"])
    if choice == 20:
        return [" "] * 3
    return rng.randrange(-100, 100_000)


def nested(depth: int, brackets: str):
    value: object = 1
    for _ in range(depth):
        value = [value] if brackets == "[]" else {"a": value}
    return value


def mutate(rng: random.Random, value, depth: int = 0):
    """``value`` with one hostile change somewhere in it."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.3:
            out[rng.choice(["zzz_unknown", "__proto__", "", "model\u0000"] + list(EXTRA_FIELDS))] = \
                EXTRA_FIELDS.get(key, hostile_value(rng))
        else:
            out[key] = mutate(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.6:
        out = list(value)
        out[rng.randrange(len(out))] = mutate(rng, rng.choice(out), depth + 1)
        return out
    return hostile_value(rng)


def raw_body(rng: random.Random, valid: bytes) -> tuple[bytes, str]:
    """A broken encoding: cut short, invalid UTF-8, deep nesting, garbage, or an empty body."""
    choice = rng.randrange(8)
    if choice == 0:
        return valid[:rng.randrange(len(valid))], "truncated JSON"
    if choice == 1:
        at = valid.find(b'"', valid.find(b":")) + 1 or 1
        return valid[:at] + rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80" * 50]) + valid[at:], \
            "invalid UTF-8"
    if choice == 2:
        depth = rng.choice([33, 1000, 100_000, 300_000])
        bracket = rng.choice([b"[", b"{\"a\":"])
        closing = b"]" if bracket == b"[" else b"}"
        return bracket * depth + b"1" + closing * depth, f"nested {depth} deep"
    if choice == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), "random bytes"
    if choice == 4:
        return rng.choice([b"", b"null", b"[]", b"1", b"\"x\"", b"{}", b"{", b"}", b"[[[[", b"\x00"]), "tiny"
    if choice == 5:
        prefix = valid.rstrip(b"}") + b', "input": ' if valid.startswith(b"{") else b"["
        return prefix + b"[" * 50_000 + b"]" * 50_000 + b"}", "deep value inside a valid body"
    if choice == 6:
        return b'{"model": "' + MODEL.encode() + b'", "input": "' + b"\\u" + b'"}', "bad escape"
    return valid.replace(b":", b"::", 1), "syntax error"


def cases(paths: list[str], count: int, seed: int = 16,
          templates: dict[str, dict] | None = None) -> list[Case]:
    """``count`` hostile requests spread over ``paths``, the same ones for the same seed (``templates``:
    the plausible bodies to break, default ``TEMPLATES``)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        path = paths[i % len(paths)]
        base = template(path, templates)
        valid = json.dumps(base).encode()
        content_type = rng.choice(["application/json"] * 6 + ["text/plain", None, "application/x-www-form"])
        if rng.random() < 0.35:
            body, kind = raw_body(rng, valid)
        else:
            value = mutate(rng, base)
            if rng.random() < 0.3:
                value = mutate(rng, value)
            body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
            kind = "mutated fields"
        out.append(Case(path, body, content_type, kind))
    return out


def send(client: httpx.Client, url: str, case: Case) -> tuple[int, str | None]:
    """POST one case: (status or 0, None when the answer is acceptable, else what was wrong). Acceptable:
    below 500, and a 4xx carries a non-empty JSON object (the route's error shape)."""
    headers = {"content-type": case.content_type} if case.content_type else {}
    what = f"{case.path} ({case.kind}, body {case.body[:160]!r})"
    try:
        response = client.post(f"{url}{case.path}", content=case.body, headers=headers)
    except httpx.HTTPError as exc:
        return 0, f"{what}: no answer: {exc!r}"
    status = response.status_code
    if status >= 500:
        return status, f"{what}: {status} {response.text[:200]}"
    if status >= 400:
        try:
            error = response.json()
        except ValueError:
            return status, f"{what}: {status} without a JSON body: {response.text[:200]}"
        if not isinstance(error, dict) or not error:
            return status, f"{what}: {status} error body {error!r}"
    return status, None


@dataclass
class FuzzRun:
    """What ``fuzz`` sent and saw: bodies sent, statuses counted, failures (``send``'s messages), the
    server's ``/health`` answer afterwards and the seconds it took."""

    sent: int
    statuses: Counter
    failures: list[str]
    health: httpx.Response
    seconds: float


def fuzz(url: str, todo: list[Case], deadline_s: float, workers: int = 4) -> FuzzRun:
    """Send ``todo`` to the server at ``url`` from ``workers`` threads, 100 cases at a time, until done or
    ``deadline_s`` seconds have passed (a slow server sends fewer: callers assert a minimum), then ask
    ``/health``."""
    start = time.monotonic()
    run = FuzzRun(0, Counter(), [], None, 0.0)  # type: ignore[arg-type]
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(workers) as pool:
        for batch_start in range(0, len(todo), 100):
            if time.monotonic() - start > deadline_s:
                break
            batch = todo[batch_start:batch_start + 100]
            for status, failure in pool.map(lambda c: send(client, url, c), batch):
                run.statuses[status] += 1
                run.failures += [failure] if failure else []
            run.sent += len(batch)
        run.health = client.get(f"{url}/health")
    run.seconds = time.monotonic() - start
    return run
