"""Vision-language inputs through the real runner: the padded-token budget counts every vision patch, so a
burst of large images is cut into small batches, and each input's vector is the one it gets alone."""

from __future__ import annotations

import asyncio

import numpy as np

from gateway.config import ModelConfig
from gateway.engines import load_engine
from gateway.inputs import ImagePart, InputItem, TextPart
from gateway.serving.runner import Runner
from tests.tiny_vlm import build_tiny_qwen2_vl, sample_image

BUDGET = 3000


def test_the_budget_counts_vision_patches(tmp_path):
    engine = load_engine(ModelConfig(name="vlm", engine="torch", dtype="float32"),
                         str(build_tiny_qwen2_vl(tmp_path / "ops-mm")))
    image = lambda seed: ImagePart("data:", "data_uri", image=sample_image(56 + 28 * seed, 84, seed=seed))  # noqa: E731
    items = [InputItem([image(i)]) for i in range(3)]
    items += [InputItem.of_text("a short caption"), InputItem([TextPart("a chart"), image(3)])]
    tokens = engine.encode_items(items)
    patches = [int(np.prod(t.images.grid_thw, axis=1).sum()) if t.images else 0 for t in tokens]
    assert all(len(t) == len(t.ids) - p // 4 + p for t, p in zip(tokens, patches, strict=True))
    # counted by decoder ids alone, the five would make one batch within the budget
    assert max(len(t.ids) for t in tokens) * len(tokens) < BUDGET < sum(len(t) for t in tokens)

    batches: list[tuple[int, int]] = []
    runner = Runner(engine, batch_tokens=BUDGET,
                    on_batch=lambda size, padded, ms: batches.append((size, padded)))
    try:
        async def submit():
            return await asyncio.gather(*(runner.run("embed", [t]) for t in tokens))

        results = asyncio.run(submit())
    finally:
        runner.stop()
    assert sum(size for size, _ in batches) == len(tokens) and len(batches) >= 3
    assert all(padded <= BUDGET or size == 1 for size, padded in batches)
    for got, alone in zip(results, tokens, strict=True):
        np.testing.assert_allclose(got[0], engine.embed([alone])[0], atol=1e-5)
