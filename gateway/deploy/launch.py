"""``gateway serve --ray``: deploy the gateway on a Ray cluster and serve HTTP until interrupted.

With ``--ray-address`` (or ``RAY_ADDRESS``) it joins that cluster, and deletes its application again on
exit. Without one it starts a local single-node cluster bound to 127.0.0.1 (no dashboard), and shuts it
down on exit: Ctrl-C and SIGTERM included. Serve's HTTP proxies listen on ``--host``/``--port``.

API keys never go into the Serve config (the controller stores it, the dashboard shows it) nor into a
``runtime_env`` (part of that config): a local cluster's processes inherit them as ``GATEWAY_API_KEYS``
from this process's environment, set before the cluster starts; a joined cluster's nodes must have them
in their own environment (or config file). Either way the ingress reports how many keys it loaded, and
a deployment that would serve with fewer keys than configured here is torn down with an error.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from gateway.config import Settings
from gateway.deploy.ray_app import APP_NAME
from gateway.deploy.serve_config import http_options, secret_environment, serve_config, settings_args

log = logging.getLogger(__name__)
# Variables the replicas need as this command saw them (the application's runtime_env carries them to
# every node of a remote cluster).
FORWARDED_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
                 "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
READY_TIMEOUT_S = 900  # model downloads and loads


def connect(address: str | None) -> bool:
    """``ray.init`` on ``address`` (``RAY_ADDRESS`` when None), else a new local cluster on 127.0.0.1.

    Returns:
        Whether a local cluster was started (the caller shuts it down).
    """
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    local = address == "local"
    if local:  # else Ray binds the machine's outward address; read when ray is first imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(address=address, **({"include_dashboard": False} if local else {}))
    return local


def deploy_config(settings: Settings) -> dict:
    """The Serve config ``deploy`` applies: every setting (defaults included) but the API keys, and the
    replicas' environment variables of ``FORWARDED_ENV`` as this process has them."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    return serve_config(settings, settings_args(settings, defaults=True), env)


def deploy(settings: Settings, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Apply the gateway's Serve config (``deploy_config``: no API keys) and wait until the application
    runs. Re-applying it with other replica counts rescales in place.

    Raises:
        RuntimeError: the application failed to deploy, was not running after ``timeout_s``, or serves
            fewer API keys than ``settings`` has (the cluster's processes lack ``GATEWAY_API_KEYS``).
    """
    from ray import serve
    from ray.serve._private.api import serve_start  # what `serve deploy` / `serve run config.yaml` use
    from ray.serve.schema import ServeDeploySchema

    client = serve_start(http_options=http_options(settings), proxy_location=settings.ray_proxy_location)
    client.deploy_apps(ServeDeploySchema.model_validate(deploy_config(settings)))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = serve.status().applications.get(APP_NAME)
        if app is not None and app.status == "RUNNING":
            check_keys(settings)
            return
        if app is not None and app.status == "DEPLOY_FAILED":
            raise RuntimeError(f"the gateway failed to deploy on Ray Serve: {app.message}")
        time.sleep(0.5)
    raise RuntimeError(f"the gateway was not running on Ray Serve after {timeout_s:g} s")


def check_keys(settings: Settings) -> None:
    """Fail closed: the running ingress must hold at least the keys configured here.

    Raises:
        RuntimeError: it holds fewer (its application is deleted first, so nothing serves without keys).
    """
    from ray import serve

    wanted = (len(settings.api_keys), settings.metrics_api_key is not None)
    if wanted == (0, False):
        return
    loaded = tuple(serve.get_app_handle(APP_NAME).key_counts.remote().result())
    if loaded[0] < wanted[0] or loaded[1] < wanted[1]:
        serve.delete(APP_NAME)
        raise RuntimeError(f"the gateway on Ray Serve loaded {loaded[0]} API keys (metrics key: "
                           f"{loaded[1]}), not {wanted[0]} ({wanted[1]}): keys never travel in the Serve "
                           "config; set GATEWAY_API_KEYS (and GATEWAY_METRICS_API_KEY) in the cluster's "
                           "environment")


def disconnect(local: bool) -> None:
    """Shut Serve and the local cluster down, or delete our application from the joined cluster."""
    import ray
    from ray import serve

    try:
        if local:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()


def serve_on_ray(settings: Settings, address: str | None) -> None:
    """Deploy, then wait; on Ctrl-C or SIGTERM tear down what this command set up, and return."""
    signal.signal(signal.SIGTERM, _interrupt)
    if not (address or os.environ.get("RAY_ADDRESS")):
        # the local cluster's processes (controller, replicas) inherit them, as no config shows them
        os.environ.update(secret_environment(settings))
    local = connect(address)
    signal.signal(signal.SIGTERM, _interrupt)  # again: ray.init installs its own, which only logs a trace
    try:
        deploy(settings)
        log.info("gateway on Ray Serve: http://%s:%d (%s cluster)", settings.host, settings.port,
                 "local" if local else "joined")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        log.info("stopping the Ray Serve application")
    finally:
        disconnect(local)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean teardown as Ctrl-C
