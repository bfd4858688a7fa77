"""The admin API (``gateway.http.routes.admin``): admin keys only, load / unload (draining in-flight
requests first) and reloading an edited config without dropping a request; real default model."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from gateway.config import DEFAULT_MODEL, Settings
from gateway.http.app import create_app
from tests.test_lifecycle import embed, hold_until, model, serve, settings, until

pytestmark = pytest.mark.anyio
ADMIN = {"Authorization": "Bearer admin-secret"}
USER = {"Authorization": "Bearer user-secret"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_only_admin_keys_manage_models_and_unload_waits_for_requests_in_flight() -> None:
    app = create_app(settings(model("base"), model("lazy", load="on_demand"),
                              api_keys=[{"key": "admin-secret", "admin": True}, {"key": "user-secret"}]))
    registry = app.state.registry
    lazy = registry.get("lazy")
    async with serve(app) as client:
        assert (await client.get("/admin/models", headers=USER)).status_code == 403
        assert (await client.get("/admin/models")).status_code == 401
        listed = (await client.get("/admin/models", headers=ADMIN)).json()["models"]
        assert [(m["name"], m["load"]) for m in listed] == [("base", "startup"), ("lazy", "on_demand")]
        assert listed[1]["state"] == "unloaded" and listed[1]["in_flight"] == 0
        assert (await client.post("/admin/models/lazy/load", headers=USER)).status_code == 403
        loaded = await client.post("/admin/models/lazy/load", headers=ADMIN)
        assert loaded.status_code == 200 and loaded.json()["state"] == "ready" and loaded.json()["bytes"] > 0
        assert (await client.post("/admin/models/nope/load", headers=ADMIN)).status_code == 404

        release, held = asyncio.Event(), asyncio.Event()
        holder = asyncio.ensure_future(hold_until(registry, "lazy", release, held))
        await asyncio.wait_for(held.wait(), 60)
        assert (await client.get("/admin/models", headers=ADMIN)).json()["models"][1]["in_flight"] == 1
        unload = asyncio.ensure_future(client.post("/admin/models/lazy/unload", headers=ADMIN))
        await until(lambda: lazy.state == "unloading", "the unload to start draining")
        done, _ = await asyncio.wait({unload}, timeout=1)
        assert not done and lazy.engine is not None  # still serving the request that holds it
        release.set()
        await holder
        answer = await unload
        assert answer.status_code == 200 and answer.json()["state"] == "unloaded" and lazy.engine is None
        assert registry.events.counts[("unload", "lazy", "admin")] == 1
        # a start-up model unloaded on purpose does not make the server unready: it loads when asked for
        assert (await client.post("/admin/models/base/unload", headers=ADMIN)).json()["state"] == "unloaded"
        assert (await client.get("/ready")).status_code == 200
        assert (await embed(client, "base", headers=USER)).status_code == 200


async def test_reload_applies_added_removed_and_changed_models_without_dropping_requests(tmp_path) -> None:
    config = tmp_path / "gateway.toml"
    table = '[[models]]\nname = "{}"\nsource = "{}"\n{}\n'
    config.write_text(table.format("a", DEFAULT_MODEL, "") + table.format("b", DEFAULT_MODEL, ""))
    app = create_app(Settings(_env_file=None, config=config))
    registry = app.state.registry
    async with serve(app) as client:
        await until(lambda: registry.all_ready and registry.get("b").state == "ready", "start-up")
        old_b = registry.get("b")
        config.write_text(table.format("b", DEFAULT_MODEL, 'aliases = ["bee"]')
                          + table.format("c", DEFAULT_MODEL, 'load = "on_demand"'))
        during = [asyncio.ensure_future(embed(client, "b", f"during {i}")) for i in range(3)]
        reload = await client.post("/admin/reload")
        assert reload.status_code == 200
        assert reload.json() == {"added": ["c"], "removed": ["a"], "changed": ["b"], "unchanged": []}
        assert [r.status_code for r in await asyncio.gather(*during)] == [200, 200, 200]
        assert (await embed(client, "a")).status_code == 404
        assert (await embed(client, "bee")).status_code == 200
        assert registry.get("b") is not old_b and old_b.engine is None  # the old one drained and unloaded
        assert registry.get("c").state == "unloaded"
        assert (await embed(client, "c")).status_code == 200
        config.write_text("[[models]]\nname = 1\n")
        bad = await client.post("/admin/reload")
        assert bad.status_code == 400 and "not reloaded" in bad.json()["error"]["message"]
        assert sorted(m.name for m in registry.models) == ["b", "c"]
        # SIGHUP does what POST /admin/reload does (the handler is on this, the main thread's, loop)
        config.write_text(table.format("b", DEFAULT_MODEL, 'aliases = ["bee"]'))
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: [m.name for m in registry.models] == ["b"], "the SIGHUP reload")
