"""The gateway on Ray Serve, on a local two-node Ray cluster (``ray.cluster_utils.Cluster``, loopback only).

One cluster and one deployment of the embedded default model serve every test of this package: first
the fault and scaling tests (one replica, killed and restarted, then scaled to two, one per node), then
the HTTP compat suites, unchanged, against the two replicas they leave (``server`` is overridden here).
Skipped, with the reason in the summary line, when Ray Serve is not installed (``pip install ".[ray]"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from compat_tests.server import RunningServer
from gateway.bench.server import free_port, wait_until_ready
from gateway.config import Settings, load_settings

# Before ray is imported: with it, Ray resolves "127.0.0.1" to loopback, not the machine's outward address,
# so every node and connection of the test cluster stays on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
try:
    import ray.serve  # noqa: F401

    RAY_MISSING = None
except ImportError as exc:  # a plain install: every test here is skipped with this reason (summary line)
    RAY_MISSING = f"Ray Serve is not installed (pip install '.[ray]'): {exc}"


@pytest.fixture(scope="package", autouse=True)
def ray_serve_installed() -> None:
    """Skip the package's tests, visibly, when Ray Serve is absent (a package-scoped autouse fixture runs
    before the cluster fixtures, so nothing here touches Ray). Not a module-level skip: pytest cannot
    skip from a conftest that it loads at start-up (``pytest compat_tests/ray_serve``)."""
    if RAY_MISSING:
        pytest.skip(RAY_MISSING)

CPUS_PER_NODE = 2  # logical CPUs Ray schedules on; a model replica reserves 1 (one torch thread)
# Inherited by the cluster's processes (replicas load the model offline, like the other compat servers).
CLUSTER_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GOMP_SPINCOUNT": "0"}


@dataclass
class RayGateway:
    """The deployed gateway: its URL, like ``RunningServer``, and the settings it was deployed with."""

    url: str
    settings: Settings

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"


@pytest.fixture(scope="package")
def ray_cluster():
    """A head and a worker node, each with ``CPUS_PER_NODE`` CPUs; torn down after the package."""
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    saved = {name: os.environ.get(name) for name in CLUSTER_ENV}
    os.environ.update(CLUSTER_ENV)
    node = {"num_cpus": CPUS_PER_NODE, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        # replicas' stdout/stderr stay in the cluster's log files instead of being copied into the test
        # run's output (``log_to_driver``); a failing test reads the deployment's state, not those lines
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            cluster.shutdown()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture(scope="package")
def ray_gateway(ray_cluster) -> RayGateway:
    """The default model deployed with one replica, Serve's HTTP proxy on the head node only (both nodes
    share this machine's ports)."""
    from gateway.deploy.launch import deploy

    # float32: the compat suites compare with in-process float32 references at tight tolerances;
    # max_queue_wait_s: the fault tests hold hundreds of long inputs queued in a one-thread replica on
    # purpose (a shared 2-core box drains them in over a minute); the default would shed them with 429.
    settings = load_settings(host="127.0.0.1", port=free_port(), ray_proxy_location="HeadOnly",
                             dtype="float32", quantize="none", max_queue_wait_s=600)
    deploy(settings)
    gateway = RayGateway(f"http://127.0.0.1:{settings.port}", settings)
    wait_until_ready(gateway.url, timeout_s=120)
    return gateway


@pytest.fixture(scope="package")
def server(ray_gateway) -> RunningServer:
    """The compat suites' ``server``: here, the Ray-served gateway."""
    return ray_gateway
