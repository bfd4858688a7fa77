"""CLIP and SigLIP on the torch and MLX engines, against the reference libraries on the same tiny weights.

References: ``SentenceTransformer.encode`` (PIL images, ``{"text": ...}`` texts) and transformers'
``get_image_features`` / ``get_text_features`` with the processor (SigLIP texts padded to max length, as
its model card says). Weights are float32 so the bound is 1e-5; MLX is held to 1e-4 against torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from gateway.config import ModelConfig
from gateway.engines import InputTooLong, load_engine, resolve_engine_name
from gateway.engines.vision.dual_encoders import read_hf_config, vision_tokens
from gateway.errors import UnprocessableInput
from gateway.inputs import ImagePart, InputItem, TextPart
from tests.tiny_dual import build_tiny_clip, build_tiny_siglip
from tests.tiny_models import minilm_dir

TEXTS = ["a photo of a cat", "https://example.com/cat.png", "slides about quarterly revenue by region, "
         "scanned pages and screenshots of a product catalogue"]
CLASSES = {"clip": transformers.CLIPModel, "siglip": transformers.SiglipModel}


def images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in
            [(40, 50), (32, 32), (90, 20)]] + [Image.new("RGB", (1, 1), (200, 30, 90))]


def image_item(image: Image.Image) -> InputItem:
    return InputItem([ImagePart("(decoded in the test)", "base64", image=image)])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dual")
    return {"clip": str(build_tiny_clip(root / "clip")), "siglip": str(build_tiny_siglip(root / "siglip"))}


def load(folders, kind: str, engine: str):
    config = ModelConfig(name=kind, source=folders[kind], engine=engine, dtype="float32")
    return load_engine(config, folders[kind])


@pytest.fixture(scope="module")
def engines(folders):
    """The torch engines (always installed), keyed by (kind, engine)."""
    return {(kind, "torch"): load(folders, kind, "torch") for kind in ("clip", "siglip")}


@pytest.fixture(scope="module")
def mlx_siglip(folders):
    """SigLIP on MLX; the tests using it skip (not error) where mlx is not installed."""
    pytest.importorskip("mlx.core")
    return load(folders, "siglip", "mlx")


def embed(engine, items: list[InputItem]) -> np.ndarray:
    return engine.embed(engine.encode_items(items))


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_torch_equals_sentence_transformers_and_transformers(kind, folders, engines):
    from sentence_transformers import SentenceTransformer

    engine, pictures = engines[kind, "torch"], images()
    ours = embed(engine, [InputItem.of_text(t) for t in TEXTS] + [image_item(p) for p in pictures])
    reference = SentenceTransformer(folders[kind], device="cpu", local_files_only=True)
    st_texts = reference.encode([{"text": t} for t in TEXTS])
    st_images = reference.encode(pictures)
    np.testing.assert_allclose(ours[:3], st_texts, atol=1e-5)
    np.testing.assert_allclose(ours[3:], st_images, atol=1e-5)
    model = CLASSES[kind].from_pretrained(folders[kind]).eval()
    processor = transformers.AutoProcessor.from_pretrained(folders[kind])
    padding = "max_length" if kind == "siglip" else True
    with torch.inference_mode():
        text_features = model.get_text_features(**processor.tokenizer(TEXTS, padding=padding, truncation=True,
                                                                      return_tensors="pt")).pooler_output
        image_features = model.get_image_features(**processor(images=pictures, return_tensors="pt"))
    np.testing.assert_allclose(ours[:3], text_features.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours[3:], image_features.pooler_output.numpy(), atol=1e-5)


def test_a_url_looking_text_is_embedded_as_text(folders, engines):
    from sentence_transformers.base.modality import infer_modality

    assert infer_modality(TEXTS[1]) == "image"  # the trap: a raw string like this is opened as an image
    engine = engines["clip", "torch"]
    as_text = embed(engine, [InputItem.of_text(TEXTS[1])])
    tokens = engine.tokenize([TEXTS[1]])[0]
    assert tokens.images is None and tokens.ids == engine.tokenizer(TEXTS[1])["input_ids"]
    np.testing.assert_array_equal(as_text, engine.embed([tokens]))


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_vectors_do_not_depend_on_the_batch(kind, engines):
    engine, pictures = engines[kind, "torch"], images()
    items = [InputItem.of_text(TEXTS[2]), image_item(pictures[0]), InputItem.of_text(TEXTS[0]),
             image_item(pictures[2]), InputItem.of_text(TEXTS[1]), image_item(pictures[1])]
    mixed = embed(engine, items)
    alone = np.concatenate([embed(engine, [item]) for item in items])
    np.testing.assert_allclose(mixed, alone, atol=1e-5)


def test_mlx_siglip_equals_torch(engines, mlx_siglip):
    items = [InputItem.of_text(t) for t in TEXTS] + [image_item(p) for p in images()]
    torch_vectors = embed(engines["siglip", "torch"], items)
    mlx_vectors = embed(mlx_siglip, items)
    np.testing.assert_allclose(mlx_vectors, torch_vectors, atol=1e-4)
    mixed = embed(mlx_siglip, items[::-1])[::-1]  # another batch order and mix
    np.testing.assert_allclose(mixed, mlx_vectors, atol=1e-5)


def test_images_count_their_vision_tokens(folders, engines):
    engine = engines["clip", "torch"]
    tokens = engine.encode_items([image_item(images()[0]), InputItem.of_text("hi")])
    assert tokens[0].ids == [] and tuple(tokens[0].images.shape) == (3, 32, 32)
    assert len(tokens[0]) == tokens[0].image_tokens == vision_tokens(read_hf_config(folders["clip"])) == 17
    assert len(engines["siglip", "torch"].encode_items([image_item(images()[0])])[0]) == 16


def test_encode_items_refuses_several_parts_and_maps_too_long_texts(engines):
    engine = engines["clip", "torch"]
    with pytest.raises(UnprocessableInput, match="does not fuse"):
        engine.encode_items([InputItem([TextPart("a"), ImagePart("x", "base64", image=images()[0])])])
    with pytest.raises(InputTooLong) as error:
        engine.encode_items([image_item(images()[0]), InputItem.of_text("word " * 100)], truncate=False)
    assert error.value.index == 1
    assert len(engine.encode_items([InputItem.of_text("word " * 100)])[0].ids) == 77


def test_clip_on_mlx_fails_naming_torch_and_auto_picks_torch(folders, monkeypatch):
    pytest.importorskip("mlx.core")
    with pytest.raises(ValueError, match="no MLX implementation.*engine = 'torch'"):
        load_engine(ModelConfig(name="clip", source=folders["clip"], engine="mlx"), folders["clip"])
    import gateway.engines as engines_module

    monkeypatch.setattr(engines_module, "on_apple_silicon", lambda: True)
    assert resolve_engine_name("auto", read_hf_config(folders["clip"])) == "torch"
    assert resolve_engine_name("auto", read_hf_config(folders["siglip"])) == "mlx"
    assert resolve_engine_name("auto", read_hf_config(minilm_dir())) == "mlx"


def test_modalities_are_detected_and_can_be_narrowed(folders, engines):
    assert engines["clip", "torch"].spec.modalities == ("text", "image")
    assert not engines["clip", "torch"].spec.fuses
    narrowed = load_engine(ModelConfig(name="c", source=folders["clip"], engine="torch", dtype="float32",
                                       modalities=["text"]), folders["clip"])
    assert narrowed.spec.modalities == ("text",)
    with pytest.raises(ValueError, match="asks for image"):
        load_engine(ModelConfig(name="m", engine="torch", modalities=["text", "image"]), str(minilm_dir()))
