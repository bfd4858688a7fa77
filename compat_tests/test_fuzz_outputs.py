"""Fuzz the routes of the ragged outputs (issue 23) against a real server serving a tiny SPLADE, an
inference-free SPLADE, a ColBERT, a PyLate ColBERT and a BGE-M3 folder: ``/embed_sparse``, ``/embed_all``,
``/pooling``, ``/v1/embeddings`` with a sparse model and the rerank routes with a multi-vector model.
Asserts what ``test_fuzz.py`` does (no 5xx, no dropped connection, a JSON error body with every 4xx, a
healthy server after), within a deadline and a minimum count of bodies."""

from __future__ import annotations

import os

import pytest

from compat_tests.fuzz_bodies import TEXTS, cases, fuzz
from compat_tests.server import run_server

BODIES = 1500
SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "23"))
DEADLINE_S = 60
MIN_BODIES = 750
WORKERS = 4
MODELS = ("splade", "free", "colbert", "pylate", "m3")
# (path, body): each route with each model it may be asked with
TEMPLATES = {
    "/embed_sparse": {"model": "free", "inputs": TEXTS, "truncate": True, "truncation_direction": "Left",
                      "prompt_name": "query", "max_active_dims": 4},
    "/embed_all": {"model": "pylate", "inputs": TEXTS, "truncate": False, "prompt_name": "query"},
    "/pooling": {"model": "colbert", "input": TEXTS, "task": "token_embed", "encoding_format": "float"},
    "/v1/embeddings": {"model": "splade", "input": TEXTS, "max_active_dims": 3, "input_type": "query"},
    "/v1/rerank": {"model": "pylate", "query": "q", "documents": ["a", "b"], "top_n": 1},
    "/rerank": {"model": "colbert", "query": "q", "texts": ["a", "b"], "raw_scores": True},
}


@pytest.fixture(scope="module")
def output_server(tmp_path_factory: pytest.TempPathFactory):
    from tests.tiny_retrieval import (
        build_tiny_bge_m3,
        build_tiny_colbert,
        build_tiny_inference_free_splade,
        build_tiny_pylate_colbert,
        build_tiny_splade,
    )

    workdir = tmp_path_factory.mktemp("outputs-server")
    builders = {"splade": build_tiny_splade, "free": build_tiny_inference_free_splade,
                "colbert": build_tiny_colbert, "pylate": build_tiny_pylate_colbert, "m3": build_tiny_bge_m3}
    config = workdir / "outputs.toml"
    config.write_text("".join(f'[[models]]\nname = "{name}"\nsource = "{build(workdir / name)}"\n'
                              f'engine = "torch"\n\n' for name, build in builders.items()))
    with run_server(workdir, args=["--config", str(config)]) as running:
        yield running


def test_hostile_bodies_on_the_output_routes_never_hurt_the_server(output_server):
    todo = [case for model in MODELS for case in cases(
        list(TEMPLATES), BODIES // len(MODELS), SEED + len(model),
        {path: {**body, "model": model} for path, body in TEMPLATES.items()})]
    run = fuzz(output_server.url, todo, DEADLINE_S, WORKERS)
    print(f"\noutput fuzz (seed {SEED}): {run.sent} bodies in {run.seconds:.0f} s, "
          f"{len(run.failures)} failures; statuses {dict(sorted(run.statuses.items()))}")
    assert not run.failures, "\n".join(run.failures[:20])
    assert run.sent >= MIN_BODIES, f"only {run.sent} of {len(todo)} bodies were sent in {DEADLINE_S} s"
    assert run.statuses[200] > 0  # some bodies stayed valid: the models really ran
    assert run.health.status_code == 200 and run.health.json()["status"] == "ok"
