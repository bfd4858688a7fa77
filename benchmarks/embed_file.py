"""``gateway embed`` (in-process) against sentence-transformers' ``encode`` on the same texts and weights.

Texts: the bench corpus's mixed-length docstrings (``gateway.bench.corpus``), ``--texts`` of them. Both
run float32 on the CPU in this process, alternately (``--rounds`` each), so the machine's other load
shows as the spread between rounds. Model loading is not timed.

    python benchmarks/embed_file.py --texts 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from gateway.bench.corpus import cycle, load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="sentence-transformers' batch size")
    args = parser.parse_args()
    os.environ.setdefault("GATEWAY_DTYPE", "float32")
    os.environ.setdefault("GOMP_SPINCOUNT", "0")  # as gateway's CLI sets it before torch loads
    from sentence_transformers import SentenceTransformer

    from gateway.bulk.parts import Parts
    from gateway.bulk.run import embed_all
    from gateway.cli import build_parser
    from gateway.engines.sources import embedded_model_dir

    texts = [t.replace("\n", " ") for t in cycle(load_corpus().mixed, 0, args.texts)]  # one a line
    model = SentenceTransformer(str(embedded_model_dir()), device="cpu")
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.txt"
        source.write_text("\n".join(texts) + "\n")
        chunks = (len(texts) + 255) // 256
        for round_ in range(args.rounds):
            start = time.perf_counter()
            reference = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
            st_rate = len(texts) / (time.perf_counter() - start)
            ns = build_parser().parse_args(["embed", str(source), "-o", f"{tmp}/out{round_}.npy", "-q"])
            parts = Parts(Path(ns.output), {"round": round_}, resume=False)
            seconds = asyncio.run(
                embed_all(ns, texts, list(range(chunks)), parts, 0)
            )
            ours = parts.load(chunks)
            worst = float(np.abs(ours - reference).max())
            print(
                f"round {round_ + 1}: sentence-transformers {st_rate:.0f} texts/s (batch {args.batch_size}); "
                f"gateway embed {len(texts) / seconds:.0f} texts/s; "
                f"ratio {len(texts) / seconds / st_rate:.2f}; "
                f"max |diff| {worst:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
