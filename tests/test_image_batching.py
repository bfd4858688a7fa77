"""Images through the batching ``Runner`` with the real tiny CLIP engine: the padded-token budget counts
an image's vision tokens, a text+image batch keeps input order, a cancelled request's images never reach
the engine, and a failing batch fails only its own requests."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from PIL import Image

from gateway.config import ModelConfig
from gateway.engines import Tokens, load_engine
from gateway.errors import EngineFailure
from gateway.inputs import ImagePart, InputItem
from gateway.serving.runner import Runner
from tests.tiny_dual import build_tiny_clip

IMAGE_TOKENS = 17  # (32 / 8)^2 patches and the class token


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = str(build_tiny_clip(tmp_path_factory.mktemp("clip-batching") / "clip"))
    return load_engine(ModelConfig(name="clip", source=path, engine="torch", dtype="float32"), path)


def prepared(engine, count: int, texts: tuple[str, ...] = ()) -> list[Tokens]:
    rng = np.random.default_rng(count)
    images = [InputItem([ImagePart("", "base64", image=Image.fromarray(
        rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)))]) for _ in range(count)]
    return engine.encode_items(images + [InputItem.of_text(text) for text in texts])


class Gated:
    """The real engine, held at the door of its next forward pass until ``release`` is set."""

    def __init__(self, engine) -> None:
        self.engine, self.spec, self.lanes = engine, engine.spec, 1
        self.release, self.inside, self.seen = threading.Event(), threading.Event(), []

    def embed(self, batch):
        self.seen.append(len(batch))
        self.inside.set()
        assert self.release.wait(30)
        return self.engine.embed(batch)


def test_the_budget_counts_vision_tokens_and_rows_keep_their_order(engine):
    tokens = prepared(engine, 6, ("a photo of a cat", "slides"))
    sizes = []
    runner = Runner(engine, batch_tokens=2 * IMAGE_TOKENS, on_batch=lambda size, padded, ms: sizes.append(
        (size, padded)))
    try:
        together = asyncio.run(runner.run("embed", tokens))
    finally:
        runner.stop()
    assert all(padded <= 2 * IMAGE_TOKENS for _, padded in sizes) and sum(s for s, _ in sizes) == 8
    alone = np.concatenate([engine.embed([t]) for t in tokens])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_cancelled_request_s_images_never_reach_the_engine(engine):
    gated = Gated(engine)
    runner = Runner(gated, batch_tokens=IMAGE_TOKENS)

    async def scenario():
        first = asyncio.ensure_future(runner.run("embed", prepared(engine, 1)))
        await asyncio.to_thread(gated.inside.wait, 30)
        second = asyncio.ensure_future(runner.run("embed", prepared(engine, 3)))
        await asyncio.sleep(0.05)
        second.cancel()
        cancelled = await asyncio.gather(second, return_exceptions=True)  # its inputs are retired now
        gated.release.set()
        return await first, cancelled

    try:
        first, (second,) = asyncio.run(scenario())
    finally:
        runner.stop()
    assert first.shape == (1, engine.spec.dim) and isinstance(second, asyncio.CancelledError)
    assert gated.seen == [1] and runner.stats.dropped_items == 3


def test_a_failing_batch_fails_only_its_requests(engine):
    runner = Runner(engine, batch_tokens=IMAGE_TOKENS)  # one image per forward pass
    broken = Tokens([], images=prepared(engine, 1)[0].images[:, :5, :5], image_tokens=IMAGE_TOKENS)

    async def scenario():
        return await asyncio.gather(runner.run("embed", [broken]), runner.run("embed", prepared(engine, 1)),
                                    return_exceptions=True)

    try:
        failed, served = asyncio.run(scenario())
        later = asyncio.run(runner.run("embed", prepared(engine, 2)))
    finally:
        runner.stop()
    assert isinstance(failed, EngineFailure) and served.shape == (1, engine.spec.dim)
    assert later.shape == (2, engine.spec.dim)
