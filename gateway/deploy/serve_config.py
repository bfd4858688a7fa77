"""``gateway ray-config``: the Serve config file (YAML) for ``serve deploy`` and KubeRay's RayService.

The file names the application builder (``gateway.deploy.ray_app:build``) and its ``args``: either the
settings inlined (self-contained; API keys are never written: give the cluster ``GATEWAY_API_KEYS``), or
the path of a TOML file that exists on the cluster (``--cluster-config``). Its ``deployments`` list each
model's replicas or autoscaling range, resources and ``max_ongoing_requests``: edit them and
``serve deploy`` again to rescale without restarting replicas. Checked against Ray's own
``ServeDeploySchema``. Format: https://docs.ray.io/en/latest/serve/production-guide/config.html
"""

from __future__ import annotations

import argparse

from gateway.config import Settings, load_settings
from gateway.deploy.ray_app import APP_NAME, INGRESS, deployment_name, deployment_options

SECRETS = {"api_keys", "metrics_api_key"}
BUILDER = "gateway.deploy.ray_app:build"
# In ``deployments`` or at the top of the config, not in ``args``: Serve then rescales a deployment whose
# replica count changed without restarting it (``args`` changes restart the whole application).
NOT_ARGS = {"config", "model", "host", "port", "ray_ingress", "ray_proxy_location", "keep_alive_timeout_s"}


def settings_args(settings: Settings, *, defaults: bool = False) -> dict:
    """The builder ``args`` that rebuild ``settings`` on the cluster (JSON-able), never its API keys:
    the Serve controller stores its config and the dashboard shows it. The ingress replicas read the keys
    from their own environment (``GATEWAY_API_KEYS``: ``secret_environment``) or config file.

    Args:
        defaults: include settings left at their defaults (an exact copy, whatever the cluster's
            environment); a written file keeps only what differs, for readability.
    """
    args = settings.model_dump(mode="json", exclude_defaults=not defaults, exclude=NOT_ARGS | SECRETS)
    args["models"] = [m.model_dump(mode="json", exclude_defaults=not defaults, exclude={"ray"})
                      for m in settings.served_models()]
    return args


def secret_environment(settings: Settings) -> dict[str, str]:
    """``GATEWAY_API_KEYS`` (a JSON list, names, models and quotas included) and
    ``GATEWAY_METRICS_API_KEY`` for ``settings``' keys: the variables that give a process started with
    them the same keys (``gateway serve --ray`` sets them before starting its local cluster)."""
    import json

    env = {}
    if settings.api_keys:
        keys = [{**k.model_dump(exclude_none=True), "key": k.key.get_secret_value()}
                for k in settings.api_keys]
        env["GATEWAY_API_KEYS"] = json.dumps(keys)
    if settings.metrics_api_key is not None:
        env["GATEWAY_METRICS_API_KEY"] = settings.metrics_api_key.get_secret_value()
    return env


def http_options(settings: Settings) -> dict:
    """Serve's HTTP proxy options: where it listens, and the gateway's keep-alive timeout (Serve's own
    default is uvicorn's 5 s, which races client connection pools)."""
    return {"host": settings.host, "port": settings.port,
            "keep_alive_timeout_s": settings.keep_alive_timeout_s}


def serve_config(settings: Settings, args: dict, env: dict[str, str] | None = None) -> dict:
    """The Serve config (``ServeDeploySchema`` as a dict) deploying ``settings`` with builder ``args``, and
    ``env`` as environment variables of its replicas (``runtime_env``).

    Raises:
        pydantic.ValidationError: Ray's schema rejects it.
    """
    from ray.serve.schema import ServeDeploySchema

    models = settings.served_models()
    deployments = [{"name": deployment_name(m), **deployment_options(m.ray, 1)} for m in models]
    deployments.append({"name": INGRESS, **deployment_options(settings.ray_ingress, 0)})
    config = {
        "proxy_location": settings.ray_proxy_location,
        "http_options": http_options(settings),
        "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": BUILDER, "args": args,
                          "deployments": deployments}],
    }
    if env:
        config["applications"][0]["runtime_env"] = {"env_vars": env}
    ServeDeploySchema.model_validate(config)
    return config


def to_yaml(config: dict, settings: Settings) -> str:
    """The config as YAML, headed by how to use it."""
    import yaml

    head = ["# Ray Serve config of the gateway (written by `gateway ray-config`).",
            "# Deploy: serve deploy <this file> (cluster dashboard on :8265), or paste it under a KubeRay",
            "# RayService's spec.serveConfigV2. Every node needs `pip install \"gateway[ray]\"` (or a",
            "# runtime_env) and the model files or hub access."]
    if settings.api_keys or settings.metrics_api_key:
        head.append("# API keys are not written here: set GATEWAY_API_KEYS (and GATEWAY_METRICS_API_KEY) "
                    "in the replicas' environment.")
    return "\n".join(head) + "\n" + yaml.safe_dump(config, sort_keys=False)


def main(args: argparse.Namespace) -> None:
    """Print or write the Serve config."""
    settings = load_settings(config=args.config, model=args.model, host=args.host, port=args.port)
    builder_args = {"config": args.cluster_config} if args.cluster_config else settings_args(settings)
    text = to_yaml(serve_config(settings, builder_args), settings)
    if args.output:
        with open(args.output, "w") as out:
            out.write(text)
    else:
        print(text, end="")
