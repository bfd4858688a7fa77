"""The Ray Serve deployment's parts that need no cluster: per-model options, the Serve config, error
mapping and cancellation of the remote runner (fake handle), tokenize-only engines, and that a plain
install never imports ray. The cluster tests are in ``compat_tests/ray_serve``."""

from __future__ import annotations

import argparse
import asyncio
import pickle
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from gateway.config import ConfigError, ModelConfig, RayDeployment, load_settings
from gateway.engines import ModelSpec, Tokens
from gateway.errors import EngineFailure, ModelUnavailable, Overloaded


def test_a_model_scales_by_replicas_or_by_a_range_not_both():
    assert RayDeployment(replicas=3).replicas == 3
    assert RayDeployment(min_replicas=1, max_replicas=4).max_replicas == 4
    for bad in ({"replicas": 2, "min_replicas": 1, "max_replicas": 2}, {"min_replicas": 1}, {"replicas": 0},
                {"min_replicas": 3, "max_replicas": 2}, {"min_replicas": 0, "max_replicas": 1}):
        with pytest.raises(ValidationError):
            RayDeployment(**bad)


def test_deployment_options_follow_the_model_config():
    from gateway.deploy.ray_app import deployment_name, deployment_options

    fixed = deployment_options(RayDeployment(replicas=2, cpus=4, gpus=1), default_cpus=1)
    assert fixed == {"max_ongoing_requests": 1024, "num_replicas": 2,
                     "ray_actor_options": {"num_cpus": 4, "num_gpus": 1}}
    scaled = deployment_options(RayDeployment(min_replicas=1, max_replicas=3), default_cpus=1)
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 3,
                                            "target_ongoing_requests": 64}
    assert "num_replicas" not in scaled and scaled["ray_actor_options"] == {"num_cpus": 1}
    assert deployment_options(RayDeployment(), default_cpus=0)["ray_actor_options"] == {"num_cpus": 0}
    assert deployment_name(ModelConfig(name="BAAI/bge m3")) == "model-BAAI-bge-m3"


def test_serve_config_is_valid_secret_free_and_rescales_without_changing_args(tmp_path):
    pytest.importorskip("ray.serve")
    from gateway.deploy.serve_config import serve_config, settings_args, to_yaml

    config_file = tmp_path / "gateway.toml"
    config_file.write_text('api_keys = ["sk-secret"]\nmax_queue_tokens = 1000\n'
                           '[[models]]\nname = "m1"\n[models.ray]\nreplicas = 1\n'
                           '[[models]]\nname = "m2"\ntask = "rerank"\n'
                           '[models.ray]\nmin_replicas = 1\nmax_replicas = 3\n')
    settings = load_settings(config=str(config_file), port=9000)
    config = serve_config(settings, settings_args(settings))
    app = config["applications"][0]
    assert app["import_path"] == "gateway.deploy.ray_app:build"
    assert [d["name"] for d in app["deployments"]] == ["model-m1", "model-m2", "ingress"]
    assert app["deployments"][1]["autoscaling_config"]["max_replicas"] == 3
    assert config["http_options"] == {"host": "127.0.0.1", "port": 9000, "keep_alive_timeout_s": 75.0}
    assert "sk-secret" not in to_yaml(config, settings)
    rebuilt = load_settings(**app["args"])  # what the builder does on the cluster
    assert [(m.name, m.task) for m in rebuilt.served_models()] == [("m1", "embed"), ("m2", "rerank")]
    assert rebuilt.max_queue_tokens == 1000

    bigger = [m.model_copy(update={"ray": RayDeployment(replicas=2)}) for m in settings.models]
    rescaled = settings.model_copy(update={"models": bigger})
    assert settings_args(rescaled) == settings_args(settings)  # Serve then rescales in place


KEYS_TOML = ('metrics_api_key = "sk-metrics-secret"\n'
             '[[api_keys]]\nkey = "sk-admin-secret"\nname = "admin"\n'
             '[[api_keys]]\nkey = "sk-tenant-secret"\nmodels = ["m1"]\ntpm = 500\n'
             '[[models]]\nname = "m1"\n[[models]]\nname = "m2"\n')
SECRETS = ("sk-metrics-secret", "sk-admin-secret", "sk-tenant-secret")


def test_gateway_serve_ray_puts_no_key_in_the_serve_config_or_a_written_file(tmp_path, monkeypatch):
    pytest.importorskip("ray.serve")
    from gateway.deploy.launch import deploy_config
    from gateway.deploy.serve_config import main as ray_config

    config_file = tmp_path / "gateway.toml"
    config_file.write_text(KEYS_TOML)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # forwarded in runtime_env, which the config shows too
    settings = load_settings(config=str(config_file))
    applied = repr(deploy_config(settings))  # what `gateway serve --ray` hands the Serve controller
    assert "HF_HUB_OFFLINE" in applied and not [s for s in SECRETS if s in applied]
    output = tmp_path / "serve.yaml"
    ray_config(argparse.Namespace(config=str(config_file), model=None, host=None, port=None,
                                  cluster_config=None, output=str(output)))
    written = output.read_text()
    assert "GATEWAY_API_KEYS" in written and not [s for s in SECRETS if s in written]


def test_the_keys_travel_as_environment_variables_that_rebuild_them_exactly(tmp_path, monkeypatch):
    from gateway.deploy.serve_config import secret_environment, settings_args

    config_file = tmp_path / "gateway.toml"
    config_file.write_text(KEYS_TOML)
    settings = load_settings(config=str(config_file))
    env = secret_environment(settings)
    assert set(env) == {"GATEWAY_API_KEYS", "GATEWAY_METRICS_API_KEY"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = load_settings(**settings_args(settings, defaults=True))  # what each ingress replica does
    assert rebuilt.api_keys == settings.api_keys and rebuilt.metrics_api_key == settings.metrics_api_key
    expected = [("admin", None, None), (None, ["m1"], 500)]
    assert [(k.name, k.models, k.tpm) for k in rebuilt.api_keys] == expected
    monkeypatch.setenv("GATEWAY_API_KEYS", "[{broken")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "JSON" in str(caught.value) and "broken" not in str(caught.value)


def test_no_deployment_is_bound_an_api_key(tmp_path):
    pytest.importorskip("ray.serve")
    from ray import cloudpickle

    from gateway.deploy.ray_app import build

    config_file = tmp_path / "gateway.toml"
    config_file.write_text(KEYS_TOML)
    app = build({"config": str(config_file)})  # the builder, as the Serve controller runs it
    bound = cloudpickle.dumps(app)  # what the controller would store: every deployment's init arguments
    assert not [s for s in SECRETS if s.encode() in bound]


class FakeResponse:
    """Stands in for a Serve ``DeploymentResponse``: awaitable, cancellable."""

    def __init__(self, outcome) -> None:
        self.outcome, self.cancelled = outcome, False

    def __await__(self):
        if isinstance(self.outcome, asyncio.Event):
            yield from self.outcome.wait().__await__()
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def cancel(self) -> None:
        self.cancelled = True


class FakeHandle:
    def __init__(self, outcome) -> None:
        self.responses: list[FakeResponse] = []
        self.calls: list[tuple] = []
        self.outcome = outcome
        self.run = self  # handle.run.remote(...)

    def remote(self, *args):
        self.calls.append(args)
        self.responses.append(FakeResponse(self.outcome))
        return self.responses[-1]


def remote_runner(outcome):
    from gateway.deploy.remote_runner import RemoteRunner

    spec = ModelSpec(name="m", task="embed", max_tokens=8, dim=3, engine="torch", device="cpu")
    return RemoteRunner(FakeHandle(outcome), "model-m", spec, batch_tokens=2048)


@pytest.mark.parametrize(("raised", "expected", "status"), [
    ("overloaded", Overloaded, 429), ("backpressure", Overloaded, 429), ("died", ModelUnavailable, 503),
    ("engine", EngineFailure, 500), ("stopping", ModelUnavailable, 503)])
def test_ray_failures_become_gateway_errors(raised, expected, status):
    pytest.importorskip("ray.serve")
    from ray.exceptions import ActorDiedError, RayTaskError
    from ray.serve.exceptions import BackPressureError

    from gateway.errors import NotReady

    def task_error(cause: Exception) -> RayTaskError:
        return RayTaskError("run", "traceback", cause)

    exc = {"overloaded": task_error(Overloaded("queue full", retry_after_s=7)),
           "backpressure": BackPressureError(10, 10), "died": ActorDiedError(),
           "engine": task_error(ValueError("boom")), "stopping": task_error(NotReady("stopping"))}[raised]
    with pytest.raises(expected) as caught:
        asyncio.run(remote_runner(exc).run("embed", [Tokens([1, 2])]))
    assert caught.value.status == status
    if status != 500:
        assert int(caught.value.headers["Retry-After"]) >= 1
    if raised == "overloaded":
        assert caught.value.headers["Retry-After"] == "7"  # the replica's own estimate


def test_remote_runner_returns_writable_rows_and_cancels_the_replica_call():
    rows = np.ones((1, 3), np.float32)
    rows.flags.writeable = False  # as Ray may hand them back
    got = asyncio.run(remote_runner(rows).run("embed", [Tokens([1, 2])]))
    assert got.flags.writeable and np.array_equal(got, rows)

    async def cancel_while_waiting():
        runner = remote_runner(asyncio.Event())  # never set: the replica is still busy
        task = asyncio.ensure_future(runner.run("embed", [Tokens([1])]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return runner.handle.responses[0]

    assert asyncio.run(cancel_while_waiting()).cancelled


def test_a_batch_line_keeps_its_background_priority_on_the_replica():
    from gateway.serving import request_context

    async def one(batch: request_context.BatchCaller | None) -> tuple:
        request_context.start("req", batch=batch)
        runner = remote_runner(np.zeros((1, 3), np.float32))
        await runner.run("embed", [Tokens([1])])
        return runner.handle.calls[0]

    assert asyncio.run(one(None))[2] is False
    assert asyncio.run(one(request_context.BatchCaller(owner=None)))[2] is True


def test_no_live_replica_answers_503_at_once_and_counts_as_failing():
    runner = remote_runner(np.zeros((1, 3), np.float32))
    runner.observe(0, None)
    assert runner.stats.failing and not runner.alive
    with pytest.raises(ModelUnavailable):
        asyncio.run(runner.run("embed", [Tokens([1])]))
    assert runner.handle.responses == []
    runner.observe(1, {"failing": False, "last_batch_ms": 3.0, "dropped_items": 2, "last_error": None,
                       "queued_items": 5, "queued_tokens": 50})
    assert not runner.stats.failing and runner.queued_items == 5 and runner.stats.dropped_items == 2


def test_a_tokenizer_only_engine_tokenizes_like_the_loaded_one_after_pickling():
    from gateway.config import DEFAULT_MODEL
    from gateway.engines.sources import embedded_model_dir
    from gateway.engines.text.tokenizer_only import Tokenization, TokenizerOnlyEngine
    from gateway.engines.torch.engine import TorchEngine

    engine = TorchEngine(ModelConfig(name=DEFAULT_MODEL), str(embedded_model_dir()))
    remote = TokenizerOnlyEngine(pickle.loads(pickle.dumps(Tokenization.of(engine))))
    texts = ["hello world", "Paris is the capital of France. " * 80]
    assert [t.ids for t in remote.tokenize(texts)] == [t.ids for t in engine.tokenize(texts)]
    pairs = [("query", "a document")]
    assert [t.ids for t in remote.tokenize_pairs(pairs)] == [t.ids for t in engine.tokenize_pairs(pairs)]
    assert remote.spec.dim == engine.spec.dim == 384 and remote.spec.normalize
    with pytest.raises(RuntimeError):
        remote.embed(engine.tokenize(["x"]))


def test_a_plain_install_never_imports_ray():
    code = ("import sys; from gateway.cli import build_parser; from gateway.http.app import create_app; "
            "from gateway.config import load_settings; import gateway.deploy.ray_app, gateway.deploy.launch; "
            "build_parser(); create_app(load_settings()); assert 'ray' not in sys.modules, 'ray imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
