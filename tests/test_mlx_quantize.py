"""The MLX quantize-by-size rule (``gateway.engines.mlx.quantize``): a model stays at full precision
unless its weights exceed a quarter of the machine's memory, then takes the highest precision that fits.

The rule is checked with simulated memory and model sizes; the size estimate against the bytes MLX
really holds after quantizing a tiny Qwen3 embedder; and the choice and its reason end to end in the
start-up log and ``/health`` of an in-process server on the default model, with a simulated memory.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import pytest

from gateway.engines.mlx.quantize import (
    GIB,
    QuantizeChoice,
    announce,
    choose_auto,
    folder_weight_sizes,
    quantization_name,
    resolve,
    weight_sizes,
)
from tests import tiny_models


def decoder_tensors(parameters: float, dtype: str = "BF16") -> list[tuple[str, tuple[int, ...], str]]:
    """A stand-in checkpoint of ``parameters`` weights: one 4096-wide linear weight of that size."""
    return [("model.layers.0.mlp.weight", (int(parameters) // 4096, 4096), dtype)]


SEVEN_B = weight_sizes(decoder_tensors(7e9))  # 13.0 GiB in bf16, 6.9 GiB at 8 bits, 3.7 GiB at 4
MINILM = folder_weight_sizes(tiny_models.minilm_dir())  # 22.7 M fp32 weights: 0.085 GiB


def test_a_7b_bf16_model_gets_the_seeds_memory_tiers():
    assert [choose_auto(SEVEN_B, gib * GIB).bits for gib in (8, 16, 24, 32, 48, 64, 128)] == [
        4, 4, 4, 8, 8, None, None]
    assert all(choose_auto(SEVEN_B, gib * GIB).fits for gib in (16, 32, 64))


@pytest.mark.parametrize("gib", [4, 8, 16, 24, 32, 64])
def test_a_small_model_stays_at_full_precision_on_any_machine(gib):
    """The issue's defect: the old rule served MiniLM at 4 bits on every machine under 30 GiB."""
    assert 0.08 * GIB < MINILM.full < 0.09 * GIB
    choice = choose_auto(MINILM, gib * GIB)
    assert (choice.bits, choice.fits) == (None, True)
    assert choice.reason.startswith("full-precision weights 0.08 GiB fit the weight budget of")
    assert resolve("auto", sizes=MINILM, memory_bytes=gib * GIB).bits is None
    assert resolve(None, sizes=lambda: MINILM, memory_bytes=gib * GIB).bits is None  # None means auto


@pytest.mark.parametrize(("full_gib", "memory_gib", "bits"), [
    (4.0, 16, None),  # exactly the budget: fits
    (4.1, 16, 8),  # q8 2.2 GiB
    (7.9, 16, 4),  # q8 4.2 GiB > 4: q4 2.2 GiB
    (15.9, 64, None), (16.1, 64, 8), (30.0, 64, 8), (31.0, 64, 4), (56.0, 64, 4),
])
def test_the_budget_is_a_quarter_of_memory_and_the_highest_precision_that_fits_wins(
        full_gib, memory_gib, bits):
    sizes = weight_sizes(decoder_tensors(full_gib * GIB / 2))
    assert abs(sizes.full - full_gib * GIB) < 8192  # rounding to whole 4096-wide rows
    choice = choose_auto(sizes, memory_gib * GIB)
    assert choice.bits == bits and choice.fits
    assert sizes.at(choice.bits) <= memory_gib * GIB / 4
    if bits == 4:
        assert sizes.q8 > memory_gib * GIB / 4
    if bits is not None:
        assert f"exceed the weight budget of {memory_gib / 4:.2f} GiB" in choice.reason
        assert f"{bits}-bit weights" in choice.reason


def test_when_even_4_bits_do_not_fit_4_bits_are_chosen_with_a_warning(caplog):
    choice = choose_auto(SEVEN_B, 12 * GIB)  # budget 3 GiB < 3.7 GiB at 4 bits
    assert (choice.bits, choice.fits) == (4, False)
    assert "and so do 4-bit weights 3.67 GiB" in choice.reason
    with caplog.at_level(logging.INFO, logger="gateway.engines.mlx.quantize"):
        announce("big", choice)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"MLX quantization of big at load: q4 ({choice.reason})")]


def test_weight_sizes_count_what_mlx_quantize_does():
    tensors = [
        ("layers.0.attn.q_proj.weight", (128, 256), "BF16"),  # quantized: 256 inputs = 4 groups of 64
        ("layers.0.attn.q_proj.bias", (128,), "BF16"),  # 1-D: stays
        ("layers.0.odd.weight", (128, 100), "BF16"),  # 100 inputs: not a multiple of 64, stays
        ("embed_tokens.weight", (1000, 64), "F32"),  # an embedding table: at least 8 bits
        ("position_ids", (1, 512), "I64"),  # not a float: stays
        ("classifier.weight", (2, 64), "F32"),  # kept at full precision by `keep`
        ("lm_head.weight", (1000, 64), "BF16"),  # dropped by `drop`
    ]
    sizes = weight_sizes(tensors, keep=lambda n: n.startswith("classifier"),
                         drop=lambda n: n.startswith("lm_head"))
    linear, bias, odd, embed, ids, head = 128 * 256 * 2, 128 * 2, 128 * 100 * 2, 64000 * 4, 512 * 8, 128 * 4
    assert sizes.full == linear + bias + odd + embed + ids + head
    scales = lambda n, dtype_bytes: n // 64 * 2 * dtype_bytes  # noqa: E731 (a scale and a bias per group)
    q_linear = {8: 128 * 256 + scales(128 * 256, 2), 4: 128 * 256 // 2 + scales(128 * 256, 2)}
    q_embed = 64000 + scales(64000, 4)  # 8 bits at q8 and at q4
    assert sizes.q8 == q_linear[8] + bias + odd + q_embed + ids + head
    assert sizes.q4 == q_linear[4] + bias + odd + q_embed + ids + head


def test_explicit_settings_and_prequantized_folders():
    assert [resolve(q, memory_bytes=16 * GIB).bits for q in ("none", "q8", "q4")] == [None, 8, 4]
    assert resolve("q8").reason == "quantize = 'q8' is set"
    shipped = [resolve(q, prequantized_bits=4, sizes=SEVEN_B, memory_bytes=16 * GIB) for q in ("auto", "q8")]
    assert shipped == [QuantizeChoice(None, "the folder is already 4-bit MLX-quantized")] * 2
    assert [quantization_name(b) for b in (None, 8, 4)] == [None, "q8", "q4"]
    with pytest.raises(ValueError, match="unknown quantize setting"):
        resolve("q3")
    with pytest.raises(ValueError, match="weight sizes"):
        resolve("auto", memory_bytes=GIB)


# -- on MLX --------------------------------------------------------------------------------------------


def mlx_bytes(model) -> int:
    from mlx.utils import tree_flatten

    return sum(value.nbytes for _, value in tree_flatten(model.parameters()))


def test_the_size_estimate_matches_what_mlx_holds_and_auto_quantizes_a_model_too_big_for_the_budget(
        tmp_path: Path, monkeypatch, caplog):
    pytest.importorskip("mlx.core")
    pytest.importorskip("mlx_lm")
    from gateway.config import ModelConfig
    from gateway.engines import load_engine

    folder = tiny_models.build_tiny_qwen3_embedder(tmp_path / "qwen3", hidden_size=128)
    sizes = folder_weight_sizes(folder, drop=lambda n: n.startswith("lm_head."))
    loaded = {}
    for setting in ("none", "q8", "q4"):
        engine = load_engine(ModelConfig(name=setting, engine="mlx", quantize=setting), str(folder))
        loaded[setting] = mlx_bytes(engine.model)
    assert loaded["none"] == sizes.full
    for bits in (8, 4):  # mlx-lm may hold a few small buffers the checkpoint has not (rope frequencies)
        assert math.isclose(loaded[f"q{bits}"], sizes.at(bits), rel_tol=0.01), (bits, loaded, sizes)

    # a machine whose quarter holds the 8-bit weights but not the full ones
    memory = 4 * (sizes.q8 + sizes.full) // 2
    monkeypatch.setattr("gateway.engines.mlx.quantize.machine_memory_bytes", lambda: memory)
    with caplog.at_level(logging.INFO, logger="gateway.engines.mlx.quantize"):
        auto = load_engine(ModelConfig(name="auto", engine="mlx", quantize="auto"), str(folder))
    assert auto.spec.quantization == "q8"
    reason = auto.spec.quantization_reason
    assert "exceed the weight budget" in reason and "8-bit weights" in reason
    assert f"MLX quantization of auto at load: q8 ({auto.spec.quantization_reason})" in caplog.messages


@pytest.mark.parametrize("memory_gib", [8, 16])
def test_health_and_the_log_give_the_choice_and_its_reason(monkeypatch, caplog, memory_gib):
    pytest.importorskip("mlx.core")
    pytest.importorskip("mlx_embeddings")
    from litestar.testing import TestClient

    from gateway.config import Settings
    from gateway.http.app import create_app
    from gateway.serving.registry import Registry

    monkeypatch.setattr("gateway.engines.mlx.quantize.machine_memory_bytes", lambda: memory_gib * GIB)
    loaded, load = threading.Event(), Registry._load

    async def load_and_signal(self, served, on_batch):  # the event the test waits on: load and warm-up done
        try:
            await load(self, served, on_batch)
        finally:
            loaded.set()

    monkeypatch.setattr(Registry, "_load", load_and_signal)
    app = create_app(Settings(model=str(tiny_models.minilm_dir()), engine="mlx", quantize="auto"))
    with caplog.at_level(logging.INFO, logger="gateway.engines.mlx.quantize"), TestClient(app) as client:
        assert loaded.wait(timeout=300)
        assert client.get("/ready").status_code == 200
        model = client.get("/health").json()["models"][0]
    assert (model["engine"], model["quantization"]) == ("mlx", None)
    reason = (f"full-precision weights 0.08 GiB fit the weight budget of {memory_gib / 4:.2f} GiB "
              f"(0.25 of {memory_gib:.2f} GiB memory)")
    assert model["quantization_reason"] == reason
    assert any(m.endswith(f"at load: none ({reason})") for m in caplog.messages)

