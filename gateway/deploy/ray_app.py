"""The gateway as a Ray Serve application: one deployment per model, behind an HTTP ingress deployment.

The ingress runs the unchanged Litestar app (every route, error shape, auth, metrics). Its registry is
built with a loader that, instead of loading weights, fetches each model's tokenizer and spec from the
model's deployment and hands the service a ``RemoteRunner``: the ingress tokenizes, and forward passes
run in the model replicas, where requests from every ingress replica batch together in the same
token-budget runner as ``gateway serve``.

Litestar apps do not pickle, so Ray gets classes and settings, and each ingress replica builds its own app
(``Ingress.__serve_build_asgi_app__``). ``build`` is the application builder named by the generated Serve
config (``import_path: gateway.deploy.ray_app:build``).

API keys are never bound into a deployment (the controller stores init arguments): each ingress replica
reads them from its own process, ``GATEWAY_API_KEYS`` in its environment or its config file, by
rebuilding the settings from the builder's ``args``.

Serve docs: https://docs.ray.io/en/latest/serve/ (deployments, ``serve.ingress``, app builders).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from gateway.config import ModelConfig, RayDeployment, Settings, load_settings
from gateway.deploy.model_server import ModelServer
from gateway.deploy.remote_runner import RemoteRunner, ReplicaWatcher
from gateway.engines.text.tokenizer_only import TokenizerOnlyEngine

if TYPE_CHECKING:
    from ray.serve import Application

APP_NAME = "gateway"
INGRESS = "ingress"
# Serve's default health check period is 10 s; a dead replica is noticed (and /ready turns 503) sooner.
HEALTH_CHECK_PERIOD_S = 2.0
LOGGING = {"enable_access_log": False}  # the ingress writes its own access line; Serve's adds CPU per call


def deployment_name(config: ModelConfig) -> str:
    """The Serve deployment name of a model: ``model-`` and its name with path characters replaced."""
    return "model-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", config.name)


def deployment_options(options: RayDeployment, default_cpus: float) -> dict:
    """``serve.deployment`` options (also the ``deployments`` entries of a Serve config) for ``options``."""
    actor = {"num_cpus": default_cpus if options.cpus is None else options.cpus}
    if options.gpus:
        actor["num_gpus"] = options.gpus
    out: dict = {"max_ongoing_requests": options.max_ongoing_requests, "ray_actor_options": actor}
    if options.min_replicas is not None:
        out["autoscaling_config"] = {
            "min_replicas": options.min_replicas,
            "max_replicas": options.max_replicas,
            "target_ongoing_requests": options.target_ongoing_requests,
        }
    else:
        out["num_replicas"] = options.replicas or 1
    return out


class Ingress:
    """Body of the HTTP ingress deployment: builds the Litestar app with remote model runners.

    Args:
        settings: the server settings, without API keys.
        models: served model name -> (deployment name, its ``DeploymentHandle``).
        args: the builder's ``args``: rebuilt here, they give the keys of this replica's environment.
    """

    def __init__(self, settings: Settings, models: dict[str, tuple[str, object]], args: dict) -> None:
        from gateway.http.request_log import configure_logging

        keys = load_settings(**args)
        self.settings = settings.model_copy(update={"api_keys": keys.api_keys,
                                                    "metrics_api_key": keys.metrics_api_key})
        configure_logging(self.settings)
        self.models = models

    def key_counts(self) -> tuple[int, bool]:
        """How many API keys this replica checks, and whether a metrics key (``launch.check_keys``)."""
        return len(self.settings.api_keys), self.settings.metrics_api_key is not None

    async def __serve_build_asgi_app__(self):
        """The app, once every model is reachable: Serve routes no request to this replica before."""
        from ray import serve

        from gateway.http.app import create_app
        from gateway.serving.registry import Registry

        watcher = ReplicaWatcher(serve.get_replica_context().app_name)
        registry = Registry(self.settings, loader=self._loader(watcher))
        # Load here rather than in the app's lifespan (which then finds nothing left to load), so a new
        # ingress replica (scale-up, rolling update) never answers 503 "loading" to routed traffic.
        await registry.load_all()
        sys.setswitchinterval(self.settings.gil_switch_interval_ms / 1000)  # as gateway serve does
        return create_app(self.settings, registry)

    def _loader(self, watcher: ReplicaWatcher):
        async def load_remote(served, on_batch):
            """Wait for a replica of the model, then tokenize like its engine and run through it."""
            deployment, handle = self.models[served.name]
            tokenization = await handle.tokenization.remote()
            batch_tokens = await handle.batch_tokens.remote()
            engine = TokenizerOnlyEngine(tokenization)
            served.engine_name = engine.spec.engine
            if engine.spec.task != served.config.task:  # the replica detected it (a classifier's labels)
                served.config = served.config.model_copy(update={"task": engine.spec.task})
            runner = RemoteRunner(handle, deployment, engine.spec, batch_tokens)
            await watcher.poll([runner])
            watcher.watch(runner)
            return engine, runner

        return load_remote


def build_app(settings: Settings, args: dict) -> Application:
    """The Serve application for ``settings`` (built from the builder's ``args``): a deployment per served
    model, and the ingress; none is bound the API keys.

    Raises:
        ImportError: Ray Serve is not installed (``pip install ".[ray]"``).
    """
    from ray import serve

    settings = settings.model_copy(update={"api_keys": [], "metrics_api_key": None})
    models = {}
    for config in settings.served_models():
        name = deployment_name(config)
        deployment = serve.deployment(
            ModelServer, name=name, logging_config=LOGGING,
            health_check_period_s=HEALTH_CHECK_PERIOD_S, **deployment_options(config.ray, 1),
        )
        models[config.name] = (name, deployment.bind(config, settings))
    ingress = serve.deployment(
        serve.ingress()(Ingress), name=INGRESS, logging_config=LOGGING,
        **deployment_options(settings.ray_ingress, 0),
    )
    return ingress.bind(settings, models, args)


def build(args: dict) -> Application:
    """Serve application builder (``import_path: gateway.deploy.ray_app:build`` in a Serve config).

    Args:
        args: the config's ``args``: ``config`` (TOML path on the cluster), and any setting to override
            (``model``, ``engine``...); ``GATEWAY_*`` variables of the replicas' environment apply too.
    """
    return build_app(load_settings(**args), args)
