"""What ``gateway serve`` imports: nothing that only the bench, Ray, MLX or an unset feature needs.

Each of these costs idle memory in every server (aiohttp and the bench modules were 9 MiB of RSS when
the command-line parser imported them, docs/precision.md "Memory"), so the serving path must not pull them in.
"""

import os
import subprocess
import sys

NOT_SERVING = ("gateway.bench", "gateway.deploy", "aiohttp", "ray", "mlx", "mlx_lm", "limits", "redis",
               "gateway.media.fetch")

SERVE_AND_LOAD = """
import sys
from gateway.cli import build_parser
from gateway.config import load_settings
from gateway.http.app import create_app
from gateway.serving.registry import load_engine, resolve_model_path

build_parser().parse_args(["serve"])
settings = load_settings()
create_app(settings)
model = settings.served_models()[0]
engine = load_engine(model.model_copy(update={"engine": "torch"}), resolve_model_path(model))
engine.embed(engine.tokenize(["warm up"]))
names = sorted({m for m in sys.modules for p in NOT_SERVING if m == p or m.startswith(p + ".")})
print(",".join(names))
"""


def test_serving_the_default_model_imports_no_bench_ray_mlx_or_unset_feature_modules():
    code = f"NOT_SERVING = {NOT_SERVING!r}\n{SERVE_AND_LOAD}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"imported while serving: {done.stdout.strip()}"
