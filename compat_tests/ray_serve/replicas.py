"""Helpers for the Ray Serve fault tests: the model deployment's replicas, scaling, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from gateway.config import DEFAULT_ALIASES, DEFAULT_MODEL, ModelConfig, RayDeployment, Settings
from gateway.deploy.ray_app import APP_NAME, deployment_name

DEPLOYMENT = deployment_name(ModelConfig(name=DEFAULT_MODEL))


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1) -> None:
    """Poll ``predicate`` until true; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def model_handle():
    """A ``DeploymentHandle`` to the default model's deployment (from this test process, a Ray driver)."""
    from ray import serve

    return serve.get_deployment_handle(DEPLOYMENT, app_name=APP_NAME)


def replica_stats(calls: int = 30) -> dict[str, dict]:
    """``ModelServer.stats()`` by replica id, from ``calls`` calls sent at once, so Serve's router spreads
    them over the replicas (one at a time, it may keep picking the one its cached queue lengths favour)."""
    handle = model_handle()
    responses = [handle.stats.remote() for _ in range(calls)]
    return {stats["replica"]: stats for stats in (response.result(timeout_s=60) for response in responses)}


def running_replicas() -> int:
    """Replicas of the model deployment that Serve reports RUNNING."""
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    deployment = app.deployments.get(DEPLOYMENT) if app else None
    return deployment.replica_states.get("RUNNING", 0) if deployment else 0


def is_ready(url: str) -> int:
    """The status of ``GET /ready`` (0 when the proxy does not answer)."""
    try:
        return httpx.get(f"{url}/ready", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def scale_to(settings: Settings, replicas: int, url: str) -> None:
    """Re-apply the gateway's Serve config with ``replicas`` model replicas; wait until they run."""
    from gateway.deploy.launch import deploy

    model = ModelConfig(name=DEFAULT_MODEL, aliases=DEFAULT_ALIASES, ray=RayDeployment(replicas=replicas))
    deploy(settings.model_copy(update={"models": [model]}))
    wait_for(lambda: running_replicas() == replicas and len(replica_stats(10)) == replicas, 240,
             f"{replicas} running replicas", every_s=1)
    wait_for(lambda: is_ready(url) == 200, 60, "/ready 200")
