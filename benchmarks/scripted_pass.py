"""Eager against traced (TorchScript) forward passes of the served engine, alone and beside a thread that
runs Python half the time (as the server's event loop does under load).

    python benchmarks/scripted_pass.py [--dtype bfloat16] [--threads 1] [--rounds 3]
    python benchmarks/scripted_pass.py --family xlm-roberta   # a base-size random model of that family

Loads the embedded default model twice through ``TorchEngine`` (``torchscript`` on and off), checks that
both give the same vectors, and prints the median ms per ``embed`` call of already tokenized short texts
(the bench corpus's load-1 texts, through the engine's own padded or packed path) for batches of 1, 8
and 32, and for 16 of load 2's documents of similar length, the variants alternated in blocks of
passes so that a drifting machine moves both alike.
"busy" runs the passes on a second thread while the main thread alternates 1 ms of pure Python with 1 ms
of sleep: an eager pass then waits for the GIL after each of its operators, a traced pass does not
(``gateway.engines.torch.scripted``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

os.environ.setdefault("GOMP_SPINCOUNT", "0")  # as the server runs (gateway.engines.torch.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gateway.bench.corpus import load_corpus  # noqa: E402
from gateway.config import ModelConfig  # noqa: E402
from gateway.engines.sources import embedded_model_dir  # noqa: E402
from gateway.engines.torch.engine import TorchEngine  # noqa: E402


def pass_ms(engine: TorchEngine, batch: list, passes: int) -> float:
    """Median ms of ``passes`` calls of ``engine.embed(batch)`` on this thread, after 5 warm-up calls."""
    for _ in range(5):
        engine.embed(batch)
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        engine.embed(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def beside_busy_python(engine: TorchEngine, batch: list, passes: int, threads: int) -> float:
    """``pass_ms`` on a second thread while this one runs Python for 1 ms out of every 2."""
    result: list[float] = []

    def lane() -> None:
        torch.set_num_threads(threads)
        result.append(pass_ms(engine, batch, passes))

    worker = threading.Thread(target=lane)
    worker.start()
    while worker.is_alive():
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
        time.sleep(0.001)
    return result[0]


def base_size_model(family: str, folder: str) -> str:
    """Save a sentence-transformers model of transformers ``family`` (``xlm-roberta``, ``mpnet``,
    ``modernbert``...) at BERT-base size (12 layers, hidden 768) with random weights and the embedded
    model's tokenizer to ``folder``: the speed of a pass does not depend on the weights' values."""
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    config = transformers.AutoConfig.for_model(
        family, vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, pad_token_id=0)
    transformers.AutoModel.from_config(config).eval().save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(str(embedded_model_dir())).save_pretrained(folder)
    SentenceTransformer(modules=[Transformer(folder), Pooling(768, pooling_mode="mean")]).save(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of each pass")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=60, help="passes per block")
    parser.add_argument("--family", help="a base-size random model of this transformers model_type "
                                         "instead of the embedded default model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = tempfile.TemporaryDirectory(prefix="scripted-pass-")
    path = base_size_model(args.family, folder.name) if args.family else str(embedded_model_dir())
    config = ModelConfig(name="m", dtype=args.dtype)
    engines = {"eager": TorchEngine(config, path, 1, torchscript=False),
               "traced": TorchEngine(config, path, 1, torchscript=True)}
    assert engines["traced"]._scripted is not None, "the model was not traced (see the log)"
    texts = engines["eager"].tokenize(load_corpus().short[:32])
    # a batch as load 2 sends them: 16 of its documents of similar length (sorted, as the batcher does)
    documents = sorted(engines["eager"].tokenize(load_corpus().mixed[:256]), key=len)
    long = documents[120:136]
    vectors = [engine.embed(texts[:8]) for engine in engines.values()]
    print(f"max |traced - eager| over 8 texts: {np.abs(vectors[0] - vectors[1]).max():.2e}")
    print(f"{args.dtype}, {args.threads} thread(s) per pass, ms per pass (median of {args.passes})")
    print("| round | batch | eager alone | traced alone | eager, busy loop | traced, busy loop |")
    print("|---:|---:|---:|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        for size, batch in ((1, texts[:1]), (8, texts[:8]), (32, texts), ("16 long", long)):
            alone = {name: pass_ms(engine, batch, args.passes) for name, engine in engines.items()}
            busy = {name: beside_busy_python(engine, batch, args.passes, args.threads)
                    for name, engine in engines.items()}
            print(f"| {round_} | {size} | {alone['eager']:.2f} | {alone['traced']:.2f} | {busy['eager']:.2f} "
                  f"| {busy['traced']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
