"""Embedding inputs that may hold images: the path beside ``service.embed_texts`` for every embedding route.

A request without any image takes ``embed_texts`` unchanged (the text fast path). One with images is
checked (the model takes images; several parts only for a model that fuses them), its images are read and
decoded under the configured limits (``gateway.media``, off the event loop), the inputs are prepared by
the engine on the tokenizer thread (``Engine.encode_items``: token ids and pixel arrays), and they go
through the model's runner exactly as texts do: ``service.embed_tokens`` (the embedding cache, keyed on
the token ids and a digest of the image arrays, then one ``runner.run("embed", ...)`` for the rest), under
the request timeout, then ``finish_vectors`` (dimensions, normalization).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.config import Settings
from gateway.engines import InputTooLong, ModelSpec, Tokens
from gateway.errors import InvalidRequest, UnprocessableInput
from gateway.inputs import InputItem, TextPart
from gateway.media.limits import FetchPolicy, ImageLimits, ImageRejected
from gateway.serving import service
from gateway.serving.admission import IMAGE_TOKENS_ESTIMATE
from gateway.serving.registry import Registry, ServedModel


@dataclass(slots=True)
class ImageInfo:
    """What a response may say about one embedded image (Cohere's ``images``, Voyage's ``image_pixels``)."""

    width: int
    height: int
    format: str
    bit_depth: int
    nbytes: int


@dataclass(slots=True)
class ItemEmbeddings(service.Embeddings):
    """``Embeddings`` of inputs that may hold images.

    Attributes:
        image_tokens: the images' cost in tokens (part of ``tokens``; ``tokens - image_tokens`` is text).
        images: every image embedded, in input order.
    """

    image_tokens: int = 0
    images: list[ImageInfo] = field(default_factory=list)

    @property
    def text_tokens(self) -> int:
        return self.tokens - self.image_tokens

    @property
    def image_pixels(self) -> int:
        return sum(image.width * image.height for image in self.images)


async def embed_items(
    registry: Registry,
    model_name: str,
    items: list[InputItem],
    *,
    dimensions: int | None = None,
    prompt: str | None = None,
    truncate: bool | None = None,
    max_tokens: int | None = None,
    truncation_side: Literal["right", "left"] = "right",
    normalize: bool | None = None,
    param: str = "input",
) -> ItemEmbeddings:
    """Embed inputs of text and image parts with a served model (arguments as ``service.embed_texts``).

    Raises:
        ModelNotFound (404), NotReady (503), InvalidRequest (400: a text-only model given an image, several
        parts for a model that does not fuse, an image refused by the limits or the fetch policy, a text
        too long...), Overloaded (429), RequestTimeout (408), EngineFailure (500).
    """
    options = dict(truncate=truncate, max_tokens=max_tokens, truncation_side=truncation_side)
    if not any(item.images for item in items):
        texts = [text_of(item, index, param) for index, item in enumerate(items)]
        result = await service.embed_texts(registry, model_name, texts, dimensions=dimensions, prompt=prompt,
                                           normalize=normalize, param=param, **options)
        return ItemEmbeddings(result.vectors, result.tokens, result.model)
    settings = registry.settings
    served = registry.get(model_name)
    engine, _ = served.ready()
    check_items(items, engine.spec, model_name, settings.max_inputs_per_request, param)
    service.check_dimensions(dimensions, engine.spec.dim)
    async with service.admitted(served, settings, estimate_items(served, items, prompt)) as ticket:
        await decode_images(items, registry, param)
        images = image_infos(items)
        tokens = await prepare(served, items, settings, param, prompt=prompt, **options)
        ticket.charge(sum(len(t) for t in tokens))
        raw = await service.embed_tokens(served, tokens, settings)
    vectors = service.finish_vectors(raw, engine.spec.normalize, dimensions, normalize)
    return ItemEmbeddings(vectors, sum(len(t) for t in tokens), model_name,
                          image_tokens=sum(t.image_tokens + t.image_ids for t in tokens), images=images)


def estimate_items(served: ServedModel, items: list[InputItem], prompt: str | None) -> int:
    """Tokens ``items`` will cost before anything is decoded: their texts as ``service.estimate_tokens``,
    each image at ``IMAGE_TOKENS_ESTIMATE``."""
    texts = [" ".join(p.text for p in item.parts if isinstance(p, TextPart)) for item in items]
    estimate, _ = service.estimate_tokens(served, [text for text in texts if text], prompt)
    return estimate + IMAGE_TOKENS_ESTIMATE * sum(len(item.images) for item in items)


def text_of(item: InputItem, index: int, param: str) -> str:
    """The text of a text-only input (its parts joined by a space). Raises InvalidRequest when it has none."""
    if not item.parts:
        raise InvalidRequest(f"'{param}[{index}]' is empty; every input must hold a text or an image",
                             param=param)
    return item.text


def check_items(items: list[InputItem], spec: ModelSpec, model_name: str, max_inputs: int,
                param: str) -> None:
    """What the model can embed, before anything is decoded.

    Raises:
        InvalidRequest: no inputs, too many, a reranker or a model without dense vectors, an empty input or
            text part, an image for a model
            that embeds text only (naming the model), or several parts for a model that does not fuse.
    """
    if not items:
        raise InvalidRequest(f"'{param}' must not be empty", param=param)
    service.check_list_size(items, max_inputs, param)
    if spec.task != "embed":
        raise service.cannot_embed(model_name, spec.task)
    service.check_output(model_name, spec.outputs, "dense")  # not a sparse or multi-vector model
    for index, item in enumerate(items):
        text_of(item, index, param)
        if any(isinstance(part, TextPart) and not part.text.strip() for part in item.parts):
            raise InvalidRequest(f"'{param}[{index}]' holds an empty text", param=param)
        if item.images and "image" not in spec.modalities:
            raise InvalidRequest(f"model '{model_name}' embeds text only; it cannot embed the image in "
                                 f"'{param}[{index}]'", param=param, code="unsupported_modality")
        if not item.is_single_part and not spec.fuses:
            raise InvalidRequest(
                f"'{param}[{index}]' holds {len(item.parts)} parts, but model '{model_name}' does not fuse "
                "texts and images into one vector: send each text and each image as its own input",
                param=param, code="unsupported_fusion")


async def decode_images(items: list[InputItem], registry: Registry, param: str) -> None:
    """Read and decode every image under the server's limits and fetch policy (each fetch has its own
    deadline; call it inside ``service.admitted``, whose deadline covers the whole request).

    Raises:
        InvalidRequest: an image refused, naming its input and the reason.
    """
    settings = registry.settings
    from gateway.media.load import load_images  # Pillow and the fetcher only once an image comes in

    loading = load_images(items, ImageLimits.from_settings(settings), FetchPolicy.from_settings(settings))
    try:
        await loading
    except ImageRejected as exc:
        where = f"{param}[{exc.index}]" if exc.index is not None else param
        raise InvalidRequest(f"'{where}': {exc.message}", param=param, code="invalid_image") from None


def image_infos(items: list[InputItem]) -> list[ImageInfo]:
    """The decoded images' sizes and formats, in input order."""
    return [ImageInfo(part.image.width, part.image.height, part.format or "", part.bit_depth, part.nbytes)
            for item in items for part in item.images]


async def prepare(served: ServedModel, items: list[InputItem], settings: Settings, param: str, *,
                  prompt: str | None,
                  truncate: bool | None, max_tokens: int | None,
                  truncation_side: Literal["right", "left"]) -> list[Tokens]:
    """``Engine.encode_items`` on the tokenizer thread, then the request's token limit. The decoded images
    are released once the engine holds their pixel arrays.

    Raises:
        InvalidRequest: a text too long under the ``reject`` policy, an input the engine refuses, or the
            request passes ``max_tokens_per_request`` (images count their tokens).
    """
    if truncate is None:
        truncate = served.config.truncation == "truncate"
    try:
        tokens = await served.tokenize(served.engine.encode_items, items, truncate=truncate,
                                       max_tokens=max_tokens, truncation_side=truncation_side, prompt=prompt,
                                       short=len(items) <= service.SHORT_INPUTS)
    except InputTooLong as exc:
        raise service.too_long_error(exc, param) from None
    except UnprocessableInput as exc:  # only the engine's input refusal is the client's fault
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None
    finally:
        for item in items:
            for part in item.images:
                part.image = None
    service.check_token_total(sum(len(t) for t in tokens), settings, param)
    return tokens


def served_modalities(served: ServedModel) -> list[str] | None:
    """What a served model embeds: its engine's modalities once loaded, else the config's override, else
    None (not known before its folder is read)."""
    if served.engine is not None:
        return list(served.engine.spec.modalities)
    return list(served.config.modalities) if served.config.modalities else None
