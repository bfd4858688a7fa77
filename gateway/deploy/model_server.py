"""One model's Ray Serve replica: its engine and the same token-budget ``Runner`` as a single process.

The replica loads the model through a one-model ``Registry`` (same loading, warm-up and failure handling
as ``gateway serve``) and answers the ingress's handle calls: ``run(kind, tokens)`` queues into the
runner, so requests from every ingress replica batch together here. Not ``@serve.batch``: that waits a
window for lone requests, does not sort by length and cannot drop inputs of cancelled requests.

The class is plain Python; ``gateway.deploy.ray_app`` turns it into a deployment. Ray cancels the
``run`` task when the caller cancels (a client disconnect at the ingress), which drops its queued inputs.
"""

from __future__ import annotations

import os

import numpy as np

from gateway.config import ModelConfig, Settings
from gateway.engines import Tokens
from gateway.engines.text.tokenizer_only import Tokenization
from gateway.serving.batch_queue import Kind
from gateway.serving.registry import Registry, ServedModel


class ModelLoadFailed(RuntimeError):
    """The replica could not load its model (Serve retries the replica and reports the deployment)."""


class ModelServer:
    """Body of a model deployment (see module docstring).

    Args:
        config: the model's ``[[models]]`` entry.
        settings: the server settings (batching, queue limit, lanes, MLX memory); their ``models`` are
            ignored, this replica serves ``config`` only.

    Raises:
        ModelLoadFailed: the model did not load or warm up.
    """

    async def __init__(self, config: ModelConfig, settings: Settings) -> None:
        from gateway.engines.torch.threads import let_idle_openmp_threads_sleep
        from gateway.http.request_log import disable_progress_bars

        let_idle_openmp_threads_sleep()  # before torch is imported in this worker process
        disable_progress_bars()  # the replica's stderr goes to Ray's logs (and the driver's): no tqdm bars
        one_model = settings.model_copy(update={"model": None, "models": [config]})
        self.registry = Registry(one_model)
        await self.registry.load_all(on_demand_too=True)  # a replica serves its model whatever its load
        self.served: ServedModel = self.registry.models[0]
        if self.served.state != "ready":
            raise ModelLoadFailed(f"model {config.name!r} failed to load: {self.served.error}")
        self.engine, self.runner = self.served.ready()

    async def run(self, kind: Kind, inputs: list[Tokens], background: bool = False) -> np.ndarray:
        """``Runner.run`` on this replica: ``(n, dim)`` float32 for ``embed``, ``(n,)`` for ``score``;
        ``background``: a batch job's lines (the ingress's request context says so), run after
        interactive work.

        Raises:
            Overloaded, NotReady, EngineFailure: as ``Runner.run``.
        """
        return await self.runner.run(kind, inputs, background=background)

    async def tokenization(self) -> Tokenization:
        """The engine's tokenizer, spec and rerank prompt, for the ingress to tokenize with."""
        return Tokenization.of(self.engine)

    async def batch_tokens(self) -> int:
        """The runner's padded-token budget per forward pass."""
        return self.runner.batch_tokens

    async def stats(self) -> dict:
        """This replica's runner state, where it runs, and its process (for health and tests)."""
        import ray
        from ray import serve

        stats, context = self.runner.stats, ray.get_runtime_context()
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "node": context.get_node_id(),
            "pid": os.getpid(),
            "batches": stats.batches,
            "items": stats.items,
            "last_batch_ms": stats.last_batch_ms,
            "failing": stats.failing,
            "last_error": stats.last_error,
            "dropped_items": stats.dropped_items,
            "non_finite": stats.non_finite,
            "queued_items": self.runner.queued_items,
            "queued_tokens": self.runner.queued_tokens,
            "device": self.engine.spec.device,
        }

    def check_health(self) -> None:
        """Serve's periodic health check: a replica whose engine threads died is replaced.

        Raises:
            RuntimeError: an engine thread is no longer running.
        """
        if not self.runner.alive:
            raise RuntimeError(f"the engine threads of {self.served.name!r} stopped")

    def __del__(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.stop()
