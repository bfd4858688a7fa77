"""Fuzz every POST route of the real server with a few thousand seeded hostile bodies (``fuzz_bodies``).

Asserts: no 5xx, no dropped connection, a JSON error body with every 4xx, and a healthy server after.
The routes come from the app's own route table, so a new route is fuzzed without editing this file.
Bounded: the requests stop at ``DEADLINE_S`` (the figures are printed; run with ``-s`` to see them), and
the test fails if by then fewer than ``MIN_BODIES`` were sent: a server that slows down cannot pass by
being fuzzed less (4,000 bodies took 29 s here, on a 2-core machine shared with other test runs).
"""

from __future__ import annotations

import os

import httpx

from compat_tests.fuzz_bodies import cases, fuzz

BODIES = 4000
SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "16"))  # another seed explores other bodies
DEADLINE_S = 75
MIN_BODIES = 2000  # half the bodies, over 100 per route on average: a deadline stop short of it fails
WORKERS = 4


def post_routes() -> list[str]:
    """Every POST path of the app, from its route table."""
    from gateway.config import Settings
    from gateway.http.app import create_app

    app = create_app(Settings())
    return sorted({route.path for route in app.routes if "POST" in getattr(route, "methods", ())})



def test_hostile_bodies_on_every_post_route_never_hurt_the_server(server):
    paths = post_routes()
    assert {"/v1/embeddings", "/v1/embed", "/v2/embed", "/embed", "/v1/rerank", "/v2/rerank", "/api/embed",
            "/api/embeddings", "/v1/multimodalembeddings"} <= set(paths)
    todo = cases(paths, BODIES, SEED)
    run = fuzz(server.url, todo, DEADLINE_S, WORKERS)
    print(f"\nfuzz (seed {SEED}): {run.sent} bodies over {len(paths)} POST routes in {run.seconds:.0f} s, "
          f"{len(run.failures)} failures; statuses {dict(sorted(run.statuses.items()))}")
    assert not run.failures, "\n".join(run.failures[:20])
    assert run.sent >= MIN_BODIES, f"only {run.sent} of {len(todo)} bodies were sent in {DEADLINE_S} s"
    assert run.health.status_code == 200 and run.health.json()["status"] == "ok"
    ok = httpx.post(f"{server.url}/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "still fine"})
    assert ok.status_code == 200


def test_a_body_over_the_default_limit_is_413_with_a_json_body_on_every_route(server):
    from gateway.config import Settings

    body = b'{"input": ["' + b"x" * Settings().max_body_bytes + b'"]}'
    # /v1/files takes uploads up to batch_max_file_bytes (200 MB): its 413 is tested in test_batch_routes.py
    own_limit = {"/v1/files"}
    with httpx.Client(timeout=60) as client:
        for path in sorted(set(post_routes()) - own_limit):
            response = client.post(f"{server.url}{path}", content=body,
                                   headers={"content-type": "application/json"})
            assert response.status_code == 413, (path, response.text[:200])
            assert isinstance(response.json(), dict) and "too large" in response.text
