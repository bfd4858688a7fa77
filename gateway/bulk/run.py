"""``gateway embed``: embed every text of a file, in chunks, with a progress bar, resumable.

In-process (default), the model loads here and each chunk goes through the same service call as the
``/v1/embeddings`` route (``service.embed_texts``: tokenizing, the runner's cross-chunk batching, the
model's truncation and normalization), so the vectors equal the server's. With ``--url`` the chunks are
sent to a running server instead (``base64`` float32, retried on 429/503 after ``Retry-After``). Up to
``concurrency`` chunks are in flight, enough to keep the runner's lanes busy; each finished chunk is
saved (``gateway.bulk.parts``) before it counts as done.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from gateway.bulk.files import BadInput, check_output, read_texts, write_vectors
from gateway.bulk.parts import Parts

EmbedChunk = Callable[[list[str]], Awaitable[np.ndarray]]
MAX_RETRIES = 20


def main(args: argparse.Namespace) -> None:
    """Run ``gateway embed`` (see ``gateway.cli.add_embed_arguments``); exits 2 on bad input or options."""
    logging.basicConfig(level=logging.WARNING)
    source, output = Path(args.input), Path(args.output)
    try:
        check_output(output)
        texts, ids = read_texts(source, args.field, args.id_field)
        stat = source.stat()
        run = {
            "input": str(source.resolve()),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "model": args.model,
            "url": args.url,
            "chunk": args.chunk,
            "dimensions": args.dimensions,
        }
        parts = Parts(output, run, resume=args.resume)
    except (BadInput, OSError, ValueError) as exc:
        print(f"gateway embed: {exc}", file=sys.stderr)
        sys.exit(2)
    chunks = math.ceil(len(texts) / args.chunk)
    todo = sorted(set(range(chunks)) - parts.done())
    left = sum(len(texts[i * args.chunk : (i + 1) * args.chunk]) for i in todo)
    seconds = asyncio.run(embed_all(args, texts, todo, parts, len(texts) - left))
    write_vectors(output, parts.load(chunks) if chunks else np.zeros((0, 0), np.float32), ids)
    parts.remove()
    if not args.quiet:
        rate = f" ({left / seconds:.0f} texts/s after the model loaded)" if seconds and left else ""
        print(f"wrote {len(texts)} vectors to {output}{rate}", file=sys.stderr)


async def embed_all(
    args: argparse.Namespace, texts: list[str], todo: list[int], parts: Parts, done: int
) -> float:
    """Embed chunks ``todo`` (``args.chunk`` texts each), ``args.concurrency`` at a time, saving each; the
    progress bar (texts/s, ETA) starts once the model is loaded, at the ``done`` texts of earlier runs.

    Returns:
        Seconds spent embedding, from the model being ready to the last chunk saved.
    """
    from tqdm import tqdm

    async with embedder(args) as embed:
        bar = tqdm(total=len(texts), initial=done, unit="text", dynamic_ncols=True, disable=args.quiet)
        pending = iter(todo)

        async def worker() -> None:
            for number in pending:
                chunk = texts[number * args.chunk : (number + 1) * args.chunk]
                vectors = await embed(chunk)
                await asyncio.to_thread(parts.save, number, vectors)
                bar.update(len(chunk))

        start = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        finally:
            bar.close()
        return time.perf_counter() - start


class embedder:  # noqa: N801 - used as ``async with embedder(args) as embed``
    """The chunk embedder of ``args``: in-process, or through the server at ``args.url``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.close: Callable[[], Awaitable[None]] | None = None

    async def __aenter__(self) -> EmbedChunk:
        if self.args.url:
            return await self._remote()
        return await self._local()

    async def __aexit__(self, *exc) -> None:
        if self.close is not None:
            await self.close()

    async def _local(self) -> EmbedChunk:
        from gateway.config import load_settings
        from gateway.serving import service
        from gateway.serving.registry import Registry

        # no embedding cache: a bulk run embeds each text once
        settings = load_settings(model=self.args.model, cache_max_bytes=0)
        registry = Registry(settings)
        self.close = registry.close
        await registry.load_all()
        model = service.default_embed_model(registry)
        served = registry.get(model)
        if served.state != "ready":
            raise SystemExit(f"gateway embed: model {model} did not load: {served.error}")

        async def embed(chunk: list[str]) -> np.ndarray:
            result = await service.embed_texts(registry, model, chunk, dimensions=self.args.dimensions)
            return result.vectors

        return embed

    async def _remote(self) -> EmbedChunk:
        import httpx

        key = self.args.api_key or os.environ.get("GATEWAY_API_KEY") or os.environ.get("OPENAI_API_KEY")
        client = httpx.AsyncClient(
            base_url=self.args.url.rstrip("/"),
            timeout=600,
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )
        self.close = client.aclose
        model = self.args.model
        if model is None:
            listed = (await client.get("/v1/models")).raise_for_status().json()["data"]
            model = listed[0]["id"]

        async def embed(chunk: list[str]) -> np.ndarray:
            body = {"model": model, "input": chunk, "encoding_format": "base64"}
            if self.args.dimensions:
                body["dimensions"] = self.args.dimensions
            for _ in range(MAX_RETRIES):
                answer = await client.post("/v1/embeddings", json=body)
                if answer.status_code not in (429, 503):
                    break
                await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
            if answer.status_code != 200:
                raise SystemExit(
                    f"gateway embed: the server answered {answer.status_code}: {answer.text[:500]}"
                )
            rows = answer.json()["data"]
            return np.stack([np.frombuffer(base64.b64decode(r["embedding"]), "<f4") for r in rows])

        return embed
