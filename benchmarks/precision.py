"""Accuracy of each number format against float32 on real text, with the default model.

For every precision: the cosine of each vector to the float32 one over whole stdlib docstrings (mixed
lengths), and the retrieval check of ``gateway.bench.retrieval`` (first sentence as the query, the rest
of the docstring among the other documents and 1,000 distractors, MRR@10). The torch engine runs
float32 and bfloat16 (``--dtypes``); ``--mlx`` adds the MLX engine unquantized, q8 and q4 (against
unquantized MLX). Prints a Markdown table.

    HF_HUB_OFFLINE=1 PYTHONPATH=$PWD python benchmarks/precision.py [--queries 1000] [--mlx]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gateway.bench.corpus import load_corpus
from gateway.bench.retrieval import embed_texts, mrr_at_10, retrieval_set
from gateway.config import DEFAULT_MODEL, ModelConfig
from gateway.engines import load_engine
from gateway.engines.sources import embedded_model_dir


def measure(engine, texts: list[str], data) -> tuple[np.ndarray, float, float]:
    """Unit vectors of ``texts``, MRR@10 on ``data`` and the seconds the retrieval embedding took."""
    vectors = embed_texts(engine, texts)
    start = time.perf_counter()
    mrr = mrr_at_10(embed_texts(engine, data.queries), embed_texts(engine, data.documents))
    return vectors, mrr, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--texts", type=int, default=512, help="docstrings compared vector by vector")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--mlx", action="store_true", help="also MLX: none, q8, q4")
    args = parser.parse_args()
    texts = load_corpus().mixed[:args.texts]
    data = retrieval_set(args.queries, args.distractors)
    path = str(embedded_model_dir())
    runs = [("torch", dtype, {"engine": "torch", "dtype": dtype}) for dtype in args.dtypes.split(",")]
    if args.mlx:
        runs += [("mlx", q, {"engine": "mlx", "quantize": q}) for q in ("none", "q8", "q4")]
    print(f"model {DEFAULT_MODEL}; {len(texts)} docstrings; retrieval: {len(data.queries)} queries, "
          f"{len(data.documents)} documents\n")
    print("| engine | precision | min cosine | mean cosine | MRR@10 | ΔMRR@10 | retrieval s |")
    print("|---|---|---|---|---|---|---|")
    baseline: dict[str, tuple[np.ndarray, float]] = {}
    for engine_name, label, options in runs:
        engine = load_engine(ModelConfig(name="m", **options), path)
        vectors, mrr, seconds = measure(engine, texts, data)
        base_vectors, base_mrr = baseline.setdefault(engine_name, (vectors, mrr))
        cosines = (vectors * base_vectors).sum(axis=1)
        spec = engine.spec
        precision = f"{label} ({spec.dtype}{', ' + spec.quantization if spec.quantization else ''})"
        print(f"| {engine_name} | {precision} | {cosines.min():.6f} | {cosines.mean():.6f} | {mrr:.4f} "
              f"| {mrr - base_mrr:+.4f} | {seconds:.1f} |", flush=True)
    print("\ncosines and ΔMRR@10 are against the first row of the same engine (torch float32, MLX "
          "unquantized)")


if __name__ == "__main__":
    main()
