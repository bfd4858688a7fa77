"""What the torch engine alone does with one-text traffic's batches: texts/s of ``TorchEngine.embed``.

No server, no tokenizer in the timed loop: the same engine the server builds (the embedded MiniLM at
the server's default precision) runs the benchmark's short texts, already tokenized, in batches of 1-32,
three ways for each batch size: one lane on one thread, two lanes on one thread each side by side (what
the runner does when work is queued), and one pass on every thread (what a lone batch gets). The gap
between these figures and the server's texts/s at the same batch size is what the server costs around
the forward pass (``benchmarks/stage_budget.py`` splits it by stage).

``--compile`` adds the same engine with its BERT compiled by ``torch.compile`` (inductor, frozen
weights, dynamic shapes) and every batch run through the padding-free path: how much a compiled forward
pass would buy, and what compiling costs (seconds, resident memory).

    python benchmarks/lane_capacity.py
    python benchmarks/lane_capacity.py --compile --seconds 3
"""

from __future__ import annotations

import argparse
import threading
import time

import torch

from gateway.bench.corpus import load_corpus
from gateway.config import DEFAULT_MODEL, ModelConfig
from gateway.engines import load_engine
from gateway.engines.sources import resolve_model_path


def rss_mib() -> float:
    """This process's resident memory (MiB)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def texts_per_s(embed, tokens: list, batch: int, seconds: float, threads: int, start: int = 0) -> float:
    """Run ``embed`` on consecutive ``batch``-sized slices for ``seconds`` on ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    done, i, began = 0, start, time.perf_counter()
    while time.perf_counter() - began < seconds:
        embed(tokens[i:i + batch])
        i, done = (i + batch) % (len(tokens) - batch), done + batch
    return done / (time.perf_counter() - began)


def side_by_side(embed, tokens: list, batch: int, seconds: float) -> float:
    """Texts/s of two one-thread lanes running at once."""
    rates = [0.0, 0.0]

    def lane(k: int) -> None:
        rates[k] = texts_per_s(embed, tokens, batch, seconds, 1, start=k * len(tokens) // 2)

    threads = [threading.Thread(target=lane, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(rates)


def compiled_embed(engine):
    """The engine's padding-free path with its BERT compiled, warmed for 1 and all threads, and the
    compile's cost: ``(embed, seconds, added RSS MiB)``. Raises ValueError for a model without that path."""
    packed = engine._packed
    if packed is None:
        raise ValueError("this model has no padding-free BERT path to compile")
    before, began = rss_mib(), time.perf_counter()
    packed.bert = torch.compile(packed.bert, dynamic=True, options={"freezing": True})
    warm = engine.tokenize(load_corpus().queries[:24])
    for threads in sorted({1, engine._cores}):
        torch.set_num_threads(threads)
        for count in (1, 2, 24):  # one row, several rows: dynamo specializes sizes 0 and 1
            packed.embed(warm[:count])
    return packed.embed, time.perf_counter() - began, rss_mib() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batches", default="1,8,16,32")
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure")
    parser.add_argument("--compile", action="store_true", help="also time the compiled forward pass")
    args = parser.parse_args()
    config = ModelConfig(name=args.model, dtype=args.dtype, engine="torch")
    engine = load_engine(config, resolve_model_path(config))
    tokens = engine.tokenize(load_corpus().short[:2048])
    cores = engine._cores
    variants = [("eager", engine.embed)]
    if args.compile:
        embed, seconds, added = compiled_embed(engine)
        print(f"compiled in {seconds:.1f} s, resident memory +{added:.0f} MiB")
        variants.append(("compiled", embed))
    print(f"{args.model} ({engine.spec.dtype}), {cores} threads, {len(tokens)} short texts, "
          f"{sum(map(len, tokens)) / len(tokens):.1f} tokens each on average\n")
    print("| forward pass | batch | one lane, 1 thread | two 1-thread lanes side by side | one pass on "
          f"{cores} threads |")
    print("|---|---:|---:|---:|---:|")
    for name, embed in variants:
        for batch in map(int, args.batches.split(",")):
            solo = texts_per_s(embed, tokens, batch, args.seconds, 1)
            pair = side_by_side(embed, tokens, batch, args.seconds)
            wide = texts_per_s(embed, tokens, batch, args.seconds, cores)
            print(f"| {name} | {batch} | {solo:.0f} | {pair:.0f} | {wide:.0f} |", flush=True)


if __name__ == "__main__":
    main()
