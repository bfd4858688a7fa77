"""``gateway serve --ray``: deploy the gateway on a Ray cluster and serve HTTP until interrupted.

With ``--ray-address`` (or ``RAY_ADDRESS``) it joins that cluster, and deletes its application again on
exit. Without one it starts a local single-node cluster bound to 127.0.0.1 (no dashboard), and shuts it
down on exit: Ctrl-C and SIGTERM included. Serve's HTTP proxies listen on ``--host``/``--port``.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from gateway.config import Settings
from gateway.deploy.ray_app import APP_NAME, build_app

log = logging.getLogger(__name__)
# Variables the replicas need as the command saw them (a local cluster inherits them anyway; a remote
# one gets them through the job's runtime environment).
FORWARDED_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
                 "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def connect(address: str | None) -> bool:
    """``ray.init`` on ``address`` (``RAY_ADDRESS`` when None), else a new local cluster.

    Returns:
        Whether a local cluster was started (the caller shuts it down).
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or "local"
    local = address == "local"
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    options: dict = {"runtime_env": {"env_vars": env}, "log_to_driver": True}
    if local:
        options.update(_node_ip_address="127.0.0.1", include_dashboard=False)
    ray.init(address=address, **options)
    return local


def deploy(settings: Settings):
    """Start Serve's proxies on ``settings.host``/``port`` (if Serve is not running yet) and run the app.

    Blocks until every deployment has a running replica. Returns the ingress's ``DeploymentHandle``.
    """
    from ray import serve

    serve.start(http_options={"host": settings.host, "port": settings.port},
                proxy_location=settings.ray_proxy_location)
    return serve.run(build_app(settings), name=APP_NAME, route_prefix="/")


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
