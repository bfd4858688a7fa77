"""Fuzz the seed projects' routes on the real server (MiniLM and a tiny CLIP): seeded hostile multipart
bodies on the upload routes (``/embed/image``, ``/embed/multimodal``), and ``fuzz_bodies``' hostile JSON
bodies, from templates of their own shapes, on the embed-rerank and tkr-embed JSON routes.

Multipart bodies mix parts of every name the routes read (and others), with or without a filename and a
Content-Type, holding valid, truncated, header-bomb, random, empty or non-UTF-8 bytes, then maybe break
the encoding itself (cut short, no closing boundary, a boundary the header does not announce, bare LF line
ends, no boundary parameter). Asserts: no 5xx, no dropped connection, a JSON object with every 4xx, and a
ready server after. Run with ``-s`` to see the status counts.
"""

from __future__ import annotations

import base64
import io
import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from compat_tests import fuzz_bodies
from compat_tests.fuzz_bodies import Case
from compat_tests.server import run_server
from compat_tests.test_image_embeddings import png_claiming
from tests.tiny_dual import build_tiny_clip

SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "24"))
MULTIPART_BODIES, JSON_BODIES, WORKERS = 600, 600, 4
UPLOAD_PATHS = ["/embed/image", "/embed/multimodal"]
JSON_TEMPLATES = {
    "/api/v1/embed": {"texts": ["hello", "world"], "batch_size": 8, "normalize": True, "auto_truncate": True,
                      "truncation_strategy": "smart_truncate", "max_tokens_override": 64},
    "/api/v1/rerank": {"query": "q", "passages": ["a", "b"], "top_k": 1, "return_documents": True},
    "/api/v1/rerank/batch": [{"query": "q", "documents": ["a", {"text": "b"}], "top_n": 2}],
    "/v1/openai/rerank": {"query": "q", "documents": ["a", "b"], "top_n": 1, "return_documents": True},
    "/v1/rerank_openai": {"query": "q", "documents": [{"text": "a"}], "top_n": 1},
    "/embed/text": {"texts": ["hello"], "normalize": True},
    "/similarity": {"query_embeddings": [[1.0, 0.0]], "candidate_embeddings": [[0.5, 0.5]],
                    "metric": "cosine"},
}
TEI_SIMILARITY = {"inputs": {"source_sentence": "a cat", "sentences": ["a dog", "a car"]},
                  "parameters": {"truncate": True, "truncation_direction": "Left"}}


def image_bytes(rng: random.Random) -> bytes:
    pixels = np.random.default_rng(rng.randrange(1000)).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, rng.choice(["PNG", "JPEG", "GIF", "WEBP"]))
    return buffer.getvalue()


def payload(rng: random.Random) -> bytes:
    choice = rng.randrange(10)
    if choice < 3:
        return image_bytes(rng)
    if choice == 3:
        data = image_bytes(rng)
        return data[: rng.randrange(len(data))]
    if choice == 4:
        return base64.b64decode(png_claiming(rng.choice([20000, 70000, 1])))
    if choice == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if choice == 6:
        return rng.choice([b"", b"true", b"false", b"tiny-clip", b"a cat", b"\xff\xfe\xfd", b"\x00" * 10])
    if choice == 7:
        return b"\x89PNG\r\n\x1a\n" + bytes(rng.choice([100, 400_000]))
    if choice == 8:
        return ("\u202e\U0001f600" * rng.randrange(1, 200)).encode()
    return b"[" * 5000 + b"]" * 5000


def part(rng: random.Random, boundary: bytes) -> bytes:
    name = rng.choice(["file", "image", "text", "normalize", "model", "file", "image", "", "x" * 300,
                       "fi\"le"])
    headers = f'Content-Disposition: form-data; name="{name}"'
    if rng.random() < 0.6:
        filename = rng.choice(["cat.png", "../../etc/passwd", "\u202e.png", "a" * 500, "", "x.jpg\x00.txt"])
        headers += f'; filename="{filename}"'
    if rng.random() < 0.7:
        kind = rng.choice(["image/png", "image/jpeg", "image/gif", "image/webp", "text/plain",
                           "application/octet-stream", "image/svg+xml", "multipart/mixed",
                           "image/png; charset=x", "text/plain; charset=bogus-charset"])
        headers += f"\r\nContent-Type: {kind}"
    body = payload(rng)
    head = b"--" + boundary + b"\r\n" + headers.encode("utf-8", "surrogatepass")
    return head + b"\r\n\r\n" + body + b"\r\n"


def multipart_cases(count: int, seed: int) -> list[Case]:
    """``count`` hostile multipart requests over ``UPLOAD_PATHS``, the same ones for the same seed."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        boundary = rng.choice([b"XyZ", b"----gw" + str(rng.randrange(10**9)).encode(), b"a" * 70])
        body = b"".join(part(rng, boundary) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 5, 30])))
        body += b"--" + boundary + b"--\r\n"
        content_type = "multipart/form-data; boundary=" + boundary.decode()
        kind = "multipart"
        roll = rng.random()
        if roll < 0.1:
            body, kind = body[: rng.randrange(len(body) + 1)], "cut short"
        elif roll < 0.18:
            body, kind = body.rsplit(b"--" + boundary + b"--", 1)[0], "no closing boundary"
        elif roll < 0.25:
            content_type, kind = "multipart/form-data; boundary=other", "unannounced boundary"
        elif roll < 0.3:
            body, kind = body.replace(b"\r\n", b"\n"), "bare LF"
        elif roll < 0.35:
            content_type, kind = "multipart/form-data", "no boundary parameter"
        elif roll < 0.4:
            content_type, kind = rng.choice(["application/x-www-form-urlencoded", "application/json", ""]), \
                "not multipart"
        out.append(Case(UPLOAD_PATHS[i % len(UPLOAD_PATHS)], body, content_type or None, kind))
    return out


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    clip = build_tiny_clip(tmp_path_factory.mktemp("fuzz-models") / "clip")
    workdir = tmp_path_factory.mktemp("fuzz-multipart-server")
    (workdir / "gateway.toml").write_text(
        'max_image_bytes = 300000\n\n[[models]]\nname = "sentence-transformers/all-MiniLM-L6-v2"\n\n'
        f'[[models]]\nname = "tiny-clip"\nsource = "{clip}"\ndtype = "float32"\n')
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, args=args) as running:
        yield running



def run_cases(server, todo: list[Case]) -> None:
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    with httpx.Client(timeout=120) as client, ThreadPoolExecutor(WORKERS) as pool:
        for status, failure in pool.map(lambda c: fuzz_bodies.send(client, server.url, c), todo):
            statuses[status] += 1
            failures += [failure] if failure else []
        ready = client.get(f"{server.url}/ready")
    print(f"\n{len(todo)} bodies (seed {SEED}): statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:20])
    assert statuses[200] > 0 and len(statuses) > 2  # the bodies reach both the model and the refusals
    assert ready.status_code == 200


def test_hostile_multipart_bodies_never_hurt_the_server(fuzz_server):
    run_cases(fuzz_server, multipart_cases(MULTIPART_BODIES, SEED))


def test_hostile_json_bodies_on_the_seed_json_routes(fuzz_server, monkeypatch):
    for path, template in JSON_TEMPLATES.items():
        monkeypatch.setitem(fuzz_bodies.TEMPLATES, path, template)
    monkeypatch.setitem(fuzz_bodies.TEMPLATES, "/tei-similarity", TEI_SIMILARITY)
    todo = fuzz_bodies.cases(list(JSON_TEMPLATES), JSON_BODIES, SEED)
    todo += [Case("/similarity", c.body, c.content_type, "TEI similarity: " + c.kind)  # TEI's, same path
             for c in fuzz_bodies.cases(["/tei-similarity"], 200, SEED)]
    run_cases(fuzz_server, todo)
