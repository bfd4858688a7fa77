"""tkr-embed's own routes (``gateway.protocol.tkr_embed``): ``POST /embed/text``, ``POST /embed/image``
(multipart ``file``) and ``POST /embed/multimodal`` (``text`` and/or an ``image`` file); errors in
FastAPI's ``{"detail"}`` shapes. Its ``/similarity`` is ``gateway.http.routes.similarity``; its ``/health``
and ``/info`` fields are added to this server's (``gateway.http.routes.seed_health``).

``model`` (a body or form field, or a query parameter) picks the model; without it: the first model
that embeds the input's modality (``model_choice.first_model``). Uploads: ``gateway.http.routes.uploads``.
"""

from __future__ import annotations

import time

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.errors import GatewayError, InvalidRequest
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import FORM, documented, form_schema
from gateway.http.routes import uploads
from gateway.http.routes.common import cancel_on_disconnect
from gateway.http.routes.model_choice import first_model
from gateway.http.routes.uploads import close_files, file_part, image_from_upload, read_form, text_field
from gateway.inputs import InputItem, Part, TextPart
from gateway.protocol import tkr_embed
from gateway.protocol.fastapi_errors import ValidationFailed, decode_json, detail_body
from gateway.serving import multimodal, service
from gateway.serving.registry import Registry

BIG_RESPONSE_ROWS = 32  # encode larger responses off the event loop

register_error_format(["/embed/text", "/embed/image", "/embed/multimodal"], detail_body)


@post("/embed/text", status_code=200, tags=["tkr-embed"], summary="Embed texts (tkr-embed)",
      operation_class=documented(tkr_embed.TextEmbeddingRequest, response=tkr_embed.Embeddings))
async def embed_text(request: Request, state: State, model: str | None = None) -> Response[bytes]:
    """``{"texts": [...] (1-100), "normalize"?, "model"?}`` -> ``{embeddings, shape, model,
    processing_time}``."""
    data = decode_json(await request.body(), tkr_embed.TextEmbeddingRequest)
    tkr_embed.check_texts(data.texts)
    registry: Registry = state.registry
    name = data.model or model or first_model(registry, "text")
    start = time.perf_counter()
    result = await cancel_on_disconnect(request, service.embed_texts(
        registry, name, data.texts, normalize=data.normalize, param="texts"))
    body = await offload(len(data.texts) > BIG_RESPONSE_ROWS, _encode, result, time.perf_counter() - start)
    return Response(body, media_type="application/json")


@post("/embed/image", status_code=200, before_request=uploads.read_body, tags=["tkr-embed"],
      summary="Embed an uploaded image (tkr-embed)",
      operation_class=documented(form_schema(file="file", required=["file"]), media_type=FORM,
                                 response=tkr_embed.Embeddings))
async def embed_image(request: Request, state: State, model: str | None = None,
                      normalize: str | None = None) -> Response[bytes]:
    """``multipart/form-data`` with a ``file`` part (and ``normalize``, ``model`` fields) -> one vector."""
    form = await read_form(request)
    try:
        upload = file_part(form, "file")
        if upload is None:
            raise ValidationFailed("Field required", ["body", "file"], kind="missing")
        wants_unit = tkr_embed.form_bool(text_field(form, "normalize") or normalize, "normalize")
        name = text_field(form, "model") or model or first_model(state.registry, "image")
        item = InputItem([await image_from_upload(upload, "file")])
        return await cancel_on_disconnect(request, _embed(state.registry, name, item, wants_unit, "file"))
    finally:
        await close_files(form)


@post("/embed/multimodal", status_code=200, before_request=uploads.read_body, tags=["tkr-embed"],
      summary="Embed a text and/or an uploaded image (tkr-embed)",
      operation_class=documented(form_schema(file="image", text=True), media_type=FORM,
                                 response=tkr_embed.Embeddings))
async def embed_multimodal(request: Request, state: State, text: str | None = None, model: str | None = None,
                           normalize: str | None = None) -> Response[bytes]:
    """``text`` (query parameter or form field) and/or an ``image`` file part -> one vector: the text's,
    the image's, or both fused by a vision-language model (a CLIP-style model cannot fuse: 400)."""
    form = await read_form(request)
    try:
        upload = file_part(form, "image")
        text = text_field(form, "text") or text
        if not text and upload is None:
            raise InvalidRequest("At least one of text or image must be provided")
        wants_unit = tkr_embed.form_bool(text_field(form, "normalize") or normalize, "normalize")
        parts: list[Part] = [await image_from_upload(upload, "image")] if upload is not None else []
        parts += [TextPart(text)] if text else []
        name = text_field(form, "model") or model or _multimodal_model(state.registry, parts)
        if len(parts) == 2:
            await state.registry.use(name)  # loads an on-demand model: its spec says whether it fuses
            _check_fuses(state.registry, name)
        field = "image" if upload is not None else "text"
        return await cancel_on_disconnect(request, _embed(state.registry, name, InputItem(parts), wants_unit,
                                                          field))
    finally:
        await close_files(form)


async def _embed(registry: Registry, name: str, item: InputItem, normalize: bool,
                 field: str) -> Response[bytes]:
    start = time.perf_counter()
    try:
        result = await multimodal.embed_items(registry, name, [item], normalize=normalize, param=field)
    except GatewayError as error:  # the one input is the field itself, not 'file[0]'
        error.message = error.message.replace(f"'{field}[0]'", f"'{field}'")
        raise
    return Response(_encode(result, time.perf_counter() - start), media_type="application/json")


def _multimodal_model(registry: Registry, parts: list[Part]) -> str:
    """The default model for ``/embed/multimodal``: text alone -> the first text model, an image -> the
    first image model, both -> the first model that fuses them."""
    if len(parts) == 1:
        return first_model(registry, "text" if isinstance(parts[0], TextPart) else "image")
    try:
        return first_model(registry, "image", fuses=True)
    except InvalidRequest:
        raise InvalidRequest(_NO_FUSION.format("no served model fuses them"), param="model") from None


def _check_fuses(registry: Registry, name: str) -> None:
    """Raises InvalidRequest (400, saying why) when ``name`` cannot fuse a text and an image."""
    engine, _ = registry.get(name).ready()
    if "image" in engine.spec.modalities and not engine.spec.fuses:
        raise InvalidRequest(_NO_FUSION.format(f"model '{name}' is a CLIP-style dual encoder"), param="model")


_NO_FUSION = ("{}: it embeds a text or an image, each into its own vector, and cannot fuse both into one. "
              "Send text or image alone, or name a vision-language embedding model with 'model'.")


def _encode(result: service.Embeddings, seconds: float) -> bytes:
    return msgspec.json.encode(tkr_embed.embeddings(result.vectors, result.model, seconds))


ROUTES = [embed_text, embed_image, embed_multimodal]
