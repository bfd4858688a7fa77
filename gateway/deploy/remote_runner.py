"""The ingress side of a model deployment: a runner-shaped handle with ``Runner.run``'s contract.

``RemoteRunner.run(kind, tokens)`` sends already-tokenized inputs to one of the model's replicas through
a Ray Serve ``DeploymentHandle`` and returns the same arrays a local ``Runner`` would. Ray's failures
become ``gateway.errors``, so every route answers them in its own shape:

- the replica holding the request died, or none is running: ``ModelUnavailable`` (503 + Retry-After);
- the replica's runner refused it (queue full): its ``Overloaded`` (429 + Retry-After), as locally;
- Serve's handle queue is full (``BackPressureError``): ``Overloaded``;
- the replica's engine raised: its ``EngineFailure`` (500); anything else Ray raises: 503.

Cancelling the awaiting task (client disconnect, timeout) cancels the replica's ``run``, which drops
its queued inputs. ``ReplicaWatcher`` polls Serve for live replicas and each model's runner stats, so
``/ready`` is 503 while a model has no running replica and ``/health`` shows its queue.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from gateway.engines import ModelSpec, Tokens
from gateway.errors import EngineFailure, GatewayError, ModelUnavailable, NotReady, Overloaded
from gateway.serving import request_context
from gateway.serving.batch_queue import Kind
from gateway.serving.batch_stats import BatchStats

log = logging.getLogger(__name__)
RETRY_AFTER_S = 2  # a replica restart takes seconds; clients (the OpenAI SDK) honour Retry-After
POLL_S = 1.0  # how often the ingress asks Serve which replicas run


class RemoteRunner:
    """A model deployment seen as a ``Runner`` (see module docstring).

    Args:
        handle: the model deployment's ``DeploymentHandle``.
        deployment: its deployment name (as ``serve.status()`` lists it).
        spec: the model's ``ModelSpec`` (for the shape of empty results).
        batch_tokens: the replicas' padded-token budget (TEI ``/info``).
    """

    def __init__(self, handle, deployment: str, spec: ModelSpec, batch_tokens: int) -> None:
        self.handle = handle
        self.deployment = deployment
        self.spec = spec
        self.batch_tokens = batch_tokens
        self.stats = BatchStats()
        self.running_replicas: int | None = None  # None until the watcher has looked
        self.replica_failing = False
        self.queued_items = 0  # as the last polled replica reported
        self.queued_tokens = 0
        self.watcher: ReplicaWatcher | None = None

    @property
    def alive(self) -> bool:
        """Whether some replica is running (unknown counts as yes)."""
        return self.running_replicas != 0

    def observe(self, running: int | None, replica_stats: dict | None) -> None:
        """Take the watcher's view: ``running`` replicas, and one replica's ``ModelServer.stats()``."""
        self.running_replicas = running
        if replica_stats is not None:
            self.replica_failing = replica_stats["failing"]
            self.stats.last_batch_ms = replica_stats["last_batch_ms"]
            self.stats.dropped_items = replica_stats["dropped_items"]
            self.stats.non_finite = replica_stats.get("non_finite", 0)
            self.stats.last_error = replica_stats["last_error"]
            self.queued_items = replica_stats["queued_items"]
            self.queued_tokens = replica_stats["queued_tokens"]
        self.stats.failing = not self.alive or self.replica_failing
        if not self.alive:
            self.stats.last_error = f"no running replica of deployment {self.deployment!r}"

    async def run(self, kind: Kind, inputs: list[Tokens]) -> np.ndarray:
        """Run ``inputs`` on a replica; same results and errors as ``Runner.run`` (see module docstring).

        Raises:
            ModelUnavailable: no running replica, or the replica holding the request died (503).
            Overloaded: the replica's queue or Serve's handle queue is full (429).
            EngineFailure: the engine raised on a batch holding these inputs (500).
        """
        if not inputs:
            return np.zeros((0, self.spec.dim) if kind == "embed" else (0,), np.float32)
        if not self.alive:
            raise ModelUnavailable(f"no replica of {self.deployment!r} is running; retry later",
                                   retry_after_s=RETRY_AFTER_S)
        request_context.count_work(len(inputs), sum(len(t) for t in inputs))
        # a batch job's lines keep their low priority in the replica's runner (it has no request context)
        response = self.handle.run.remote(kind, inputs, request_context.is_background())
        try:
            rows = await response
        except asyncio.CancelledError:
            response.cancel()  # awaiting a response does not cancel it: Ray must be told
            raise
        except Exception as exc:  # noqa: BLE001 - every Ray failure becomes a gateway error
            raise gateway_error(exc, self.deployment) from None
        return rows if rows.flags.writeable else rows.copy()  # Ray may hand back read-only buffers

    def stop(self) -> None:
        """Stop watching the deployment (its replicas stop with the deployment, not with this ingress)."""
        if self.watcher is not None:
            self.watcher.unwatch(self)

    def join(self, timeout_s: float) -> None:
        """Nothing to wait for (see ``stop``)."""


def gateway_error(exc: Exception, deployment: str) -> GatewayError:
    """The ``gateway.errors`` answer to an exception from a model deployment handle call."""
    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    if isinstance(exc, ray_errors.RayTaskError):
        cause = exc.cause
        if isinstance(cause, NotReady):  # that replica is stopping: another one (or a new one) will take it
            return ModelUnavailable(cause.message, retry_after_s=RETRY_AFTER_S)
        if isinstance(cause, GatewayError):
            return cause
        log.error("model deployment %s raised %r", deployment, cause)
        return EngineFailure("the model failed to process this request; it was not retried")
    if isinstance(exc, serve_errors.BackPressureError):
        return Overloaded(f"model deployment {deployment!r} is overloaded, retry later",
                          retry_after_s=max(1, round(exc.retry_after_s or 1)))
    log.warning("model deployment %s unavailable: %r", deployment, exc)
    return ModelUnavailable(f"the replica of {deployment!r} serving this request is unavailable; retry later",
                            retry_after_s=RETRY_AFTER_S)


class ReplicaWatcher:
    """Polls Serve every ``POLL_S`` for each model's running replicas and one replica's runner stats.

    Args:
        app_name: the Serve application of the deployments.
    """

    def __init__(self, app_name: str) -> None:
        self.app_name = app_name
        self.runners: list[RemoteRunner] = []
        self._task: asyncio.Task | None = None

    def watch(self, runner: RemoteRunner) -> None:
        """Keep ``runner``'s view current (starts polling on first use, on the running event loop)."""
        self.runners.append(runner)
        runner.watcher = self
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    def unwatch(self, runner: RemoteRunner) -> None:
        """Forget ``runner``; polling stops with the last one."""
        if runner in self.runners:
            self.runners.remove(runner)
        if not self.runners and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - a failed poll keeps the last view; try again next time
                log.warning("could not read the Serve status", exc_info=True)
            await asyncio.sleep(POLL_S)

    async def poll(self, runners: list[RemoteRunner] | None = None) -> None:
        """One look at Serve's status and at each live model's runner stats (``runners``: default all)."""
        from ray import serve

        status = await asyncio.to_thread(serve.status)  # a blocking call to the Serve controller
        app = status.applications.get(self.app_name)
        for runner in self.runners if runners is None else runners:
            deployment = app.deployments.get(runner.deployment) if app else None
            running = deployment.replica_states.get("RUNNING", 0) if deployment else 0
            stats = await _replica_stats(runner) if running else None
            runner.observe(running, stats)


async def _replica_stats(runner: RemoteRunner, timeout_s: float = 2.0) -> dict | None:
    """``ModelServer.stats()`` of whichever replica takes the call, or None if none answers in time."""
    response = runner.handle.stats.remote()
    try:
        return await asyncio.wait_for(asyncio.ensure_future(_await(response)), timeout_s)
    except Exception:  # noqa: BLE001 - stats are best effort
        response.cancel()
        return None


async def _await(response):
    return await response
