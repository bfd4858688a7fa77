"""Wire inputs with images -> ``InputItem``s, per adapter: a plain string is always text, images come only
from image fields, and malformed parts get a 400 naming where they are."""

from __future__ import annotations

import msgspec
import pytest

from gateway.errors import InvalidRequest
from gateway.inputs import ImagePart, TextPart
from gateway.protocol import cohere_embed, openai, voyage_multimodal
from gateway.protocol.cohere_embed import EmbedRequest, EmbedRequestV2
from gateway.protocol.image_parts import image_part
from gateway.protocol.openai import EmbeddingRequest
from gateway.protocol.voyage_multimodal import MultimodalRequest

URI = "data:image/png;base64,iVBORw0KGgo="


def openai_items(value):
    request = msgspec.json.decode(msgspec.json.encode({"model": "m", "input": value}), type=EmbeddingRequest)
    return openai.input_items(request.input)


def test_plain_text_and_token_ids_keep_the_text_path():
    texts = ["https://example.com/a.png", "/etc/passwd"]
    for value in [texts[0], texts, [1, 2], [[1], [2]], [[]]]:
        assert openai_items(value) is None
    assert openai.split_input(["https://example.com/a.png"]) == (["https://example.com/a.png"], [])


def test_openai_part_shapes():
    items = openai_items([{"type": "image_url", "image_url": {"url": URI}}, {"image": "iVBORw0KGgo="},
                          {"text": "https://example.com/a.png"}, "plain", [{"type": "text", "text": "a"},
                                                                           {"image_url": "https://x.org/b.jpg"}]])
    kinds = [[(type(p).__name__, getattr(p, "kind", None)) for p in item.parts] for item in items]
    assert kinds == [[("ImagePart", "data_uri")], [("ImagePart", "base64")], [("TextPart", None)],
                     [("TextPart", None)], [("TextPart", None), ("ImagePart", "url")]]
    assert items[2].parts == [TextPart("https://example.com/a.png")]
    with pytest.raises(msgspec.ValidationError):  # as OpenAI: input is a string or an array, never an object
        openai_items({"image": URI})


@pytest.mark.parametrize("value, message", [
    ([{"image_url": {"url": "/etc/passwd"}}], "file paths are never read"),
    ([{"image_url": {}}], "input[0].image_url.url"),
    ([{"video": "x"}], "must be one of"),
    ([{"text": 3}], "input[0].text"),
    ([[1, 2], {"text": "a"}], "token ids cannot be mixed"),
    ([[{"text": "a"}, 5]], "token ids cannot be mixed"),
    ([[], {"text": "a"}], "token ids cannot be mixed"),
])
def test_malformed_openai_parts(value, message):
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        openai_items(value)


def test_image_fields_classify_their_value():
    assert image_part(URI, "f", base64=False).kind == "data_uri"
    assert image_part("HTTPS://x.org/a.png", "f", base64=False).kind == "url"
    assert image_part("file:///etc/passwd", "f", base64=False).kind == "url"  # refused by gateway.media
    assert image_part("iVBORw0KGgo=", "f", base64=True).kind == "base64"
    with pytest.raises(InvalidRequest, match="data URI"):
        image_part("iVBORw0KGgo=", "f", base64=False)


def test_cohere_images_and_image_url_parts():
    items, param = cohere_embed.request_items(EmbedRequest(images=[URI], input_type="image"))
    assert param == "images" and isinstance(items[0].parts[0], ImagePart)
    body = {"inputs": [{"content": [{"type": "image_url", "image_url": {"url": URI}}]},
                       {"content": [{"type": "image_url", "image_url": URI}]}]}
    items, param = cohere_embed.request_items(msgspec.convert(body, EmbedRequestV2))
    assert param == "inputs" and [p.kind for i in items for p in i.parts] == ["data_uri", "data_uri"]
    with pytest.raises(InvalidRequest, match="input_type"):
        cohere_embed.request_items(EmbedRequest(texts=["a"], input_type="image"))
    with pytest.raises(InvalidRequest, match="exactly one"):
        cohere_embed.request_items(EmbedRequest(texts=["a"], images=[URI]))


def test_voyage_inputs():
    body = {"model": "m", "inputs": [{"content": [{"type": "text", "text": "a"}]},
                                     {"content": [{"type": "image_base64", "image_base64": URI}]},
                                     {"content": [{"type": "image_url", "image_url": "https://x.org/a.png"}]}],
            "input_type": None, "truncation": True, "output_dtype": None, "output_dimension": None,
            "encoding_format": "base64"}
    request = msgspec.json.decode(msgspec.json.encode(body), type=MultimodalRequest)
    items = voyage_multimodal.request_items(request)
    assert [type(p).__name__ for i in items for p in i.parts] == ["TextPart", "ImagePart", "ImagePart"]
    assert voyage_multimodal.wants_base64(request)
    segment = {"type": "video_url", "video_url": "https://x.org/a.mp4"}
    video = msgspec.convert({"model": "m", "inputs": [{"content": [segment]}]}, MultimodalRequest)
    with pytest.raises(InvalidRequest, match="videos are not supported"):
        voyage_multimodal.request_items(video)
