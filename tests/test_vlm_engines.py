"""Vision-language embedders (Qwen2-VL: Ops-MM-embedding-v1 / GME; Qwen3-VL-Embedding) on both engines.

The torch engine is checked against each model card's reference pipeline (``vlm_reference``: its prompt,
image resize, transformers processor and forward pass, last-token pooling) to 1e-5 for text, image and
fused inputs; the MLX engine against the torch engine to 1e-4. Tiny random models, built offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.config import ModelConfig
from gateway.engines import InputTooLong, load_engine
from gateway.engines.text.pooling import l2_normalize
from gateway.errors import UnprocessableInput
from gateway.inputs import ImagePart, InputItem, TextPart
from tests.tiny_vlm import build_tiny_qwen2_vl, build_tiny_qwen3_vl, sample_image
from tests.vlm_reference import Reference

LAYOUTS = ["ops-mm", "gme", "qwen3-vl"]
TEXT = "Quarterly revenue by region, as a bar chart on a slide"
QUERY = "Find the slide that shows revenue by region"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("vlm")
    return {
        "ops-mm": str(build_tiny_qwen2_vl(root / "ops-mm", "ops-mm")),
        "gme": str(build_tiny_qwen2_vl(root / "gme", "gme", seed=1, legacy_keys=False)),
        "qwen3-vl": str(build_tiny_qwen3_vl(root / "qwen3-vl")),
    }


@pytest.fixture(scope="module")
def torch_engines(folders):
    return {name: load_engine(ModelConfig(name=name, engine="torch", dtype="float32"), path)
            for name, path in folders.items()}


def image_part(image) -> ImagePart:
    return ImagePart("data:image/png;base64,", "data_uri", image=image)


def cases() -> dict[str, tuple[InputItem, str | None, list]]:
    """name -> (input, its text, its images)."""
    one, two = sample_image(56, 84, seed=0), sample_image(120, 64, seed=1)
    return {
        "text": (InputItem.of_text(TEXT), TEXT, []),
        "image": (InputItem([image_part(one)]), None, [one]),
        "fused": (InputItem([TextPart(TEXT), image_part(one)]), TEXT, [one]),
        "two images": (InputItem([image_part(one), TextPart(TEXT), image_part(two)]), TEXT, [one, two]),
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_torch_engine_equals_the_model_cards_reference(layout, folders, torch_engines):
    engine, reference = torch_engines[layout], Reference(folders[layout], layout)
    named = cases()
    if layout == "gme":  # gme_inference.py embeds one image per input
        named.pop("two images")
    vectors = engine.embed(engine.encode_items([item for item, _, _ in named.values()]))
    for row, (name, (_, text, images)) in enumerate(named.items()):
        expected = reference.embed(text, images)
        np.testing.assert_allclose(vectors[row], expected, atol=1e-5, err_msg=f"{layout}: {name}")
        np.testing.assert_allclose(l2_normalize(vectors[row:row + 1])[0], l2_normalize(expected[None])[0],
                                   atol=1e-5, err_msg=f"{layout}: {name}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_query_instruction_is_the_system_message(layout, folders, torch_engines):
    engine, reference = torch_engines[layout], Reference(folders[layout], layout)
    instruction = "Find an image that matches the text."
    if layout == "qwen3-vl":
        instruction = engine.spec.prompts["query"]
    tokens = engine.encode_items([InputItem.of_text(QUERY)], prompt=instruction)
    np.testing.assert_allclose(engine.embed(tokens)[0], reference.embed(QUERY, [], instruction), atol=1e-5)
    plain = engine.embed(engine.tokenize([QUERY]))[0]
    np.testing.assert_allclose(plain, reference.embed(QUERY, []), atol=1e-5)
    assert np.abs(plain - engine.embed(tokens)[0]).max() > 1e-3  # the instruction changes the vector


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_text_is_the_same_alone_and_batched_with_images(layout, torch_engines):
    engine = torch_engines[layout]
    items = [item for item, _, _ in cases().values()]
    batched = engine.embed(engine.encode_items(items))
    alone = engine.embed(engine.encode_items(items[:1]))
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    image_alone = engine.embed(engine.encode_items(items[1:2]))
    np.testing.assert_allclose(image_alone[0], batched[1], atol=1e-5)


def test_spec_of_a_vision_language_folder(torch_engines):
    spec = torch_engines["ops-mm"].spec
    assert (spec.modalities, spec.fuses, spec.instructions, spec.pooling, spec.normalize) == (
        ("text", "image"), True, True, "last", True)
    assert spec.dim == 64 and spec.dtype == "float32"
    helpful = "You are a helpful assistant."
    assert spec.prompts == {"query": helpful, "document": helpful}
    assert torch_engines["gme"].spec.max_tokens == 1800  # gme_inference.py's max_length
    qwen3 = torch_engines["qwen3-vl"].spec
    assert qwen3.prompts["query"] == "Retrieve images or text relevant to the user's query."
    assert qwen3.prompts["document"] == "Represent the user's input."


def test_image_tokens_count_every_vision_patch(torch_engines):
    engine = torch_engines["ops-mm"]
    text, fused = engine.encode_items([InputItem.of_text(TEXT), cases()["fused"][0]])
    grid = fused.images.grid_thw
    patches = int(np.prod(grid, axis=1).sum())
    merged = fused.ids.count(engine.image_token_id)
    assert merged == patches // 4 and fused.image_tokens == patches - merged and fused.image_ids == merged
    assert fused.image_tokens + fused.image_ids == patches  # the images' cost: every vision patch
    assert len(fused) == len(text.ids) + 2 + patches  # frame and text, <|vision_start|/end|>, every patch
    assert fused.images.pixel_values.shape[0] == patches
    assert 256 <= merged <= 1280  # Ops-MM's fetch_image bounds, in merged patches


def test_long_texts_lose_text_tokens_only(torch_engines):
    engine = torch_engines["ops-mm"]
    long_text = " ".join(["revenue"] * 400)
    full = engine.encode_items([InputItem([TextPart(long_text), image_part(sample_image())])])[0]
    cut, = engine.encode_items([InputItem([TextPart(long_text), image_part(sample_image())])],
                               max_tokens=len(full.ids) - 100)
    assert cut.truncated and len(cut.ids) == len(full.ids) - 100
    assert cut.ids[-5:] == full.ids[-5:] and cut.ids.count(engine.image_token_id) == full.ids.count(
        engine.image_token_id)
    left, = engine.encode_items([InputItem.of_text(long_text)], max_tokens=60, truncation_side="left")
    assert len(left.ids) == 60 and engine.tokenizer.decode(left.ids).endswith("<|endoftext|>")
    with pytest.raises(InputTooLong):
        engine.encode_items([InputItem.of_text(long_text)], max_tokens=60, truncate=False)
    # a request's max_tokens never cuts images (nor the last text token); the model's own limit is firm
    images = InputItem([image_part(sample_image(seed=i)) for i in range(2)])
    assert len(engine.encode_items([images], max_tokens=100)[0].ids) > 2 * 256


def test_images_beyond_the_models_limit_are_an_error(folders):
    engine = load_engine(ModelConfig(name="short", engine="torch", dtype="float32", max_tokens=400),
                         folders["ops-mm"])
    assert len(engine.encode_items([InputItem([image_part(sample_image())])])[0].ids) < 400
    with pytest.raises(InputTooLong):
        engine.encode_items([InputItem([image_part(sample_image(seed=i)) for i in range(2)])])


def test_inputs_the_model_cannot_embed_are_refused(torch_engines):
    engine = torch_engines["qwen3-vl"]
    with pytest.raises(UnprocessableInput, match="aspect ratio"):
        engine.encode_items([InputItem([image_part(sample_image(2, 500))])])
    with pytest.raises(UnprocessableInput, match="reserved for images"):
        engine.encode_items([InputItem.of_text("look: <|image_pad|>")])
    with pytest.raises(UnprocessableInput, match="need an image"):
        engine.tokens_from_ids([[1, 2, engine.image_token_id]])
    with pytest.raises(ValueError, match="does not score pairs"):
        engine.tokenize_pairs([("q", "d")])


def test_a_vision_language_folder_serves_embed_only(folders):
    with pytest.raises(ValueError, match="task = 'embed'"):
        load_engine(ModelConfig(name="x", engine="torch", task="rerank"), folders["ops-mm"])


@pytest.fixture(scope="module")
def mlx_engines(folders):
    pytest.importorskip("mlx.core")
    return {name: load_engine(ModelConfig(name=name, engine="mlx", quantize="none"), path)
            for name, path in folders.items()}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mlx_engine_equals_torch(layout, torch_engines, mlx_engines):
    items = [item for item, _, _ in cases().values()]
    torch_vectors = torch_engines[layout].embed(torch_engines[layout].encode_items(items))
    mlx_engine = mlx_engines[layout]
    assert mlx_engine.spec.engine == "mlx" and mlx_engine.spec.quantization is None
    mlx_vectors = mlx_engine.embed(mlx_engine.encode_items(items))
    np.testing.assert_allclose(mlx_vectors, torch_vectors, atol=1e-4)
    alone = mlx_engine.embed(mlx_engine.encode_items(items[:1]))
    np.testing.assert_allclose(alone[0], mlx_vectors[0], atol=1e-5)


def test_mlx_quantizes_the_decoder_at_load_and_loads_quantized_folders(folders, mlx_engines, tmp_path):
    import json

    import mlx.core as mx
    from mlx.utils import tree_flatten

    items = [item for item, _, _ in cases().values()][:3]
    full = l2_normalize(mlx_engines["qwen3-vl"].embed(mlx_engines["qwen3-vl"].encode_items(items)))
    q8 = load_engine(ModelConfig(name="q8", engine="mlx", quantize="q8"), folders["qwen3-vl"])
    assert q8.spec.quantization == "q8"
    params = dict(tree_flatten(q8.model.parameters()))
    assert any(k.startswith("language_model.") and k.endswith(".scales") for k in params)
    assert not any(k.startswith("vision_tower.") and k.endswith(".scales") for k in params)
    vectors = l2_normalize(q8.embed(q8.encode_items(items)))
    assert (vectors * full).sum(axis=1).min() > 0.99
    # a folder saved quantized (as mlx-community repos are) loads as it is, whatever quantize says
    source, saved = Path(folders["qwen3-vl"]), tmp_path / "q8-folder"
    saved.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
                 "chat_template.jinja"):
        (saved / name).write_bytes((source / name).read_bytes())
    config = json.loads((source / "config.json").read_text())
    config["quantization"] = {"group_size": 64, "bits": 8}
    (saved / "config.json").write_text(json.dumps(config))
    mx.save_safetensors(str(saved / "model.safetensors"), params)
    loaded = load_engine(ModelConfig(name="pre", engine="mlx", quantize="q4"), str(saved))
    assert loaded.spec.quantization == "q8"
    np.testing.assert_allclose(loaded.embed(loaded.encode_items(items)), q8.embed(q8.encode_items(items)),
                               atol=1e-5)
