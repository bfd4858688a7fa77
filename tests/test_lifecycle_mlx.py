"""Models on demand on the MLX engine (``mlx[cpu]`` on Linux): an on-demand model loads on its first
request, unloads through the admin API (its runner threads gone), and loads again with the same vectors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.test_lifecycle import embed, model, serve, settings

pytest.importorskip("mlx.core")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def runner_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"runner:{name}:")]


async def test_an_on_demand_mlx_model_loads_unloads_and_loads_again_with_the_same_vectors() -> None:
    from gateway.http.app import create_app

    app = create_app(settings(model("base"), model("lazy-mlx", load="on_demand", engine="mlx")))
    async with serve(app) as client:
        assert not runner_threads("lazy-mlx")
        first = await embed(client, "lazy-mlx", "a cat sat on the mat")
        assert first.status_code == 200, first.text
        listed = {m["name"]: m for m in (await client.get("/admin/models")).json()["models"]}
        assert listed["lazy-mlx"]["state"] == "ready" and runner_threads("lazy-mlx")
        health = {m["name"]: m for m in (await client.get("/health")).json()["models"]}
        assert health["lazy-mlx"]["engine"] == "mlx"
        unloaded = await client.post("/admin/models/lazy-mlx/unload")
        assert unloaded.status_code == 200, unloaded.text
        listed = {m["name"]: m for m in (await client.get("/admin/models")).json()["models"]}
        assert listed["lazy-mlx"]["state"] == "unloaded" and not runner_threads("lazy-mlx")
        again = await embed(client, "lazy-mlx", "a cat sat on the mat")
        assert again.status_code == 200, again.text
    vectors = [np.array(r.json()["data"][0]["embedding"], np.float32) for r in (first, again)]
    assert np.array_equal(vectors[0], vectors[1])
