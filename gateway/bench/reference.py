"""The in-process reference: sentence-transformers ``encode`` on the same texts, same model, same threads.

It runs in float32 (what a plain ``SentenceTransformer(...)`` does) and, when the server runs another
number format (bfloat16 on CPUs with AMX), again with the weights in that format, so the server is
compared both with what users get in-process by default and with in-process at its own precision.

For each load the reference does the same work with no server in between, at its best batch size
(several are tried on the same texts and the fastest wins):

- ``short``: throughput of ``encode`` over the short texts; latency of ``encode([one text])``;
- ``batch256``: ``encode`` of the same 256-text lists the server receives (throughput and latency);
- ``rerank20`` / ``rerank100``: ``encode([query, *documents])`` and the cosines, per query.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.bench.corpus import Corpus, cycle
from gateway.bench.loads import BATCH_TEXTS, RERANK_DOCUMENTS

BATCH_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Reference:
    """One in-process measurement: throughput in texts/s, latency percentiles in ms."""

    texts_per_s: float
    p50_ms: float
    p99_ms: float
    note: str
    forward_p50_ms: float = math.nan  # ``short`` only: the model's forward pass of one tokenized text


def load_model(model: str, threads: int, dtype: str = "float32"):
    """The sentence-transformers model the server serves as ``model``, on CPU/GPU like the server, with
    its weights in ``dtype`` (``float32``, ``bfloat16``, ``float16``)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from gateway.config import ModelConfig
    from gateway.engines.sources import resolve_model_path
    from gateway.engines.torch.engine import pick_device

    torch.set_num_threads(threads)
    path = resolve_model_path(ModelConfig(name=model))
    return SentenceTransformer(path, device=pick_device(), local_files_only=True,
                               model_kwargs={"dtype": getattr(torch, dtype)})


def server_dtype(url: str | None, model: str) -> str:
    """The number format the server runs ``model`` in: from its ``/health`` at ``url``, else (a server
    started here) what the engine's ``auto`` resolves to on this machine."""
    if url:
        import httpx

        health = httpx.get(f"{url}/health", timeout=30).json()
        dtypes = [m.get("dtype") for m in health["models"] if model in (m["name"], *m["aliases"])]
        return next((d for d in dtypes if d), "float32")
    from gateway.engines.torch.engine import pick_device
    from gateway.engines.torch.precision import resolve_torch_dtype

    return resolve_torch_dtype(None, pick_device())


def timed_ms(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000


def encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)


def best_batch_size(model, chunks: list[list[str]], sizes: tuple[int, ...]) -> tuple[int, list[float]]:
    """The batch size encoding ``chunks`` fastest, and its time per chunk (ms)."""
    timings = {size: [timed_ms(lambda c=c, s=size: encode(model, c, s)) for c in chunks] for size in sizes}
    best = min(timings, key=lambda size: sum(timings[size]))
    return best, timings[best]


def summarize(times_ms: list[float], texts_per_call: int, note: str) -> Reference:
    return Reference(texts_per_call * 1000 / float(np.median(times_ms)), float(np.percentile(times_ms, 50)),
                     float(np.percentile(times_ms, 99)), note)


def short_reference(model, corpus: Corpus, quick: bool) -> Reference:
    """Best-batch throughput over short texts; latency of one short text per call."""
    texts = corpus.short[: 256 if quick else 2048]
    size, times = best_batch_size(model, [texts], (32, 128) if quick else BATCH_SIZES)
    single = [timed_ms(lambda t=t: encode(model, [t], 1)) for t in corpus.short[: 20 if quick else 200]]
    forward = forward_ms(model, corpus.short[: 20 if quick else 200])
    return Reference(len(texts) * 1000 / times[0], float(np.percentile(single, 50)),
                     float(np.percentile(single, 99)), f"batch {size}; latency of 1 text",
                     float(np.median(forward)))


def forward_ms(model, texts: list[str]) -> list[float]:
    """The bare forward pass of each text alone (ms): the model's modules on its already tokenized
    features, no tokenizer, no batching, no conversion to numpy; what a lone request cannot go below.

    On a CPU it runs on one thread and on all of them, eager and, where the server would trace the
    transformer (``gateway.engines.torch.scripted``), traced too; the fastest (lowest median) is kept,
    so the target is the best the hardware does whichever way the server runs its pass.
    """
    features = tokenized(model, texts)
    return min((way.times_ms(features) for way in forward_ways(model)), key=np.median)


@dataclass(frozen=True)
class ForwardWay:
    """One way to run a model's bare forward pass: ``run(features)`` on ``threads`` torch threads."""

    label: str  # e.g. "traced, 1 thread"
    threads: int
    run: Callable[[dict], object]

    def times_ms(self, features: list[dict]) -> list[float]:
        """The pass over each of ``features`` (one text's tokenized tensors each), ms."""
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return [timed_ms(lambda f=f: self.run(dict(f))) for f in features]
        finally:
            torch.set_num_threads(previous)


def tokenized(model, texts: list[str]) -> list[dict]:
    """Each text alone through ``model``'s tokenizer, on the model's device (tensors, and
    sentence-transformers' own keys such as ``modality``)."""
    device = model.device
    return [{k: v.to(device) if hasattr(v, "to") else v for k, v in model.tokenize([text]).items()}
            for text in texts]


def forward_ways(model) -> list[ForwardWay]:
    """The ways the server may run ``model``'s pass: eager and (where the server traces the transformer)
    traced, each on one thread and on all of them (a CPU), or on all of them (a GPU)."""
    import torch

    runs = [("eager", lambda f: model(f))]
    traced = _traced_forward(model)
    if traced is not None:
        runs.append(("traced", traced))
    threads = torch.get_num_threads()
    counts = sorted({1, threads}) if model.device.type == "cpu" else [threads]
    return [ForwardWay(f"{label}, {count} thread{'s' * (count > 1)}", count, run)
            for count in counts for label, run in runs]


def fastest_way(model, texts: list[str]) -> ForwardWay:
    """The way of ``forward_ways`` with the lowest median pass over ``texts``."""
    features = tokenized(model, texts)
    return min(forward_ways(model), key=lambda way: np.median(way.times_ms(features)))


def _traced_forward(model):
    """``model``'s forward with its transformer traced as the server traces it, or None where the server
    runs it eagerly."""
    from gateway.engines.torch.scripted import script_transformer

    modules = list(model)
    traced = script_transformer(modules[0], model.device)
    if traced is None or modules[0].module_output_name != "token_embeddings":
        return None

    def forward(features: dict) -> dict:
        features = traced(features)
        for module in modules[1:]:
            features = module(features)
        return features

    return forward


def batch_reference(model, corpus: Corpus, quick: bool) -> Reference:
    """``encode`` of the load's own 256-text lists."""
    chunks = [cycle(corpus.mixed, i * BATCH_TEXTS, BATCH_TEXTS) for i in range(1 if quick else 3)]
    size, times = best_batch_size(model, chunks, (32,) if quick else BATCH_SIZES)
    return summarize(times, BATCH_TEXTS, f"batch {size}")


def rerank_reference(model, corpus: Corpus, documents: list[str], count: int, quick: bool) -> Reference:
    """Per query: embed the query and ``count`` documents in one ``encode``, then the cosines."""
    queries = corpus.queries[: 3 if quick else 20]

    def score(i: int, size: int) -> np.ndarray:
        vectors = encode(model, [queries[i], *cycle(documents, i * count, count)], size)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit[1:] @ unit[0]

    sizes = (32,) if quick else (16, 32, 64, 128)
    best = min(sizes, key=lambda size: sum(timed_ms(lambda s=size, i=i: score(i, s)) for i in range(2)))
    return summarize([timed_ms(lambda i=i: score(i, best)) for i in range(len(queries))], count,
                     f"batch {best}; query + {count} docs + cosine")


def measure_references(model, corpus: Corpus, rerank_documents: list[str], groups: set[str],
                       quick: bool = False) -> dict[str, Reference]:
    """The references the selected load ``groups`` compare with, keyed like ``Load.reference``."""
    encode(model, corpus.short[:64], 32)  # warm-up: lazy initialisation, allocator
    references: dict[str, Reference] = {}
    if "1" in groups:
        references["short"] = short_reference(model, corpus, quick)
    if "2" in groups:
        references[f"batch{BATCH_TEXTS}"] = batch_reference(model, corpus, quick)
    if "3" in groups:
        for count in RERANK_DOCUMENTS:
            references[f"rerank{count}"] = rerank_reference(model, corpus, rerank_documents, count, quick)
    return references


def best_of(first: dict[str, Reference], second: dict[str, Reference]) -> dict[str, Reference]:
    """Per key, the faster of two measurements (highest texts/s, lowest latencies): on a shared machine a
    burst of other work during one pass would otherwise flatter every ratio."""
    merged = {}
    for key, a in first.items():
        b = second.get(key, a)
        fast = a if a.texts_per_s >= b.texts_per_s else b
        forward = float(np.fmin(a.forward_p50_ms, b.forward_p50_ms))  # nan only when neither measured it
        merged[key] = Reference(fast.texts_per_s, min(a.p50_ms, b.p50_ms), min(a.p99_ms, b.p99_ms),
                                f"{fast.note}; best of 2 passes", forward)
    return merged


def fitting_documents(model, texts: list[str]) -> list[str]:
    """The texts short enough for the model to embed whole (so the server never chunks them)."""
    limit = model.max_seq_length
    lengths = [len(ids) for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
    return [text for text, length in zip(texts, lengths, strict=True) if length <= limit]
