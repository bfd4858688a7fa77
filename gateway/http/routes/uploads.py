"""Multipart uploads (``curl -F file=@cat.jpg``): the form read under Litestar's limits, a file part's bytes,
and the image part they become.

The body is read whole first (``read_body``: over ``max_body_bytes`` is a 413), then Litestar's multipart
parser splits it, refusing more than ``MAX_FORM_PARTS`` parts. A file part lives in an anonymous spooled
temporary file (memory up to 1 MiB, then an unnamed file): its client-given name is never used, and the
bytes are decoded only by ``gateway.media`` (base64 into an ``ImagePart``, so every check of an inline
image applies: byte cap, the four formats, pixel cap and aspect ratio read from the header first, the
decompression-bomb guard, EXIF rotation). Every refusal is a 4xx in the route's error shape.
"""

from __future__ import annotations

import base64

from litestar import Request
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.exceptions import ClientException

from gateway.errors import InvalidRequest
from gateway.inputs import ImagePart
from gateway.protocol.fastapi_errors import ValidationFailed
from gateway.protocol.tkr_embed import check_declared_type

MAX_FORM_PARTS = 16  # the app's ``multipart_form_part_limit``: these forms hold at most four parts
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def read_body(request: Request) -> None:
    """``before_request`` of upload routes: read the body under ``max_body_bytes`` (413), without the JSON
    depth scan of ``check_body`` (image bytes hold brackets at random)."""
    if request.method == "POST":
        await request.body()


async def read_form(request: Request) -> FormMultiDict:
    """The request's form fields and files; empty for a body that is no form (its parts are then missing).

    Raises:
        InvalidRequest: a malformed multipart body, too many parts, or a field that is not UTF-8 text (400).
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        return FormMultiDict()
    try:
        return await request.form()
    except ClientException as exc:
        if "Too Large" in str(exc.detail):  # Litestar's words for the part limit
            raise InvalidRequest(f"The form holds more than {MAX_FORM_PARTS} parts.") from None
        raise InvalidRequest(f"The multipart/form-data body is malformed ({exc.detail}).") from None
    except (UnicodeDecodeError, LookupError, ValueError):
        raise InvalidRequest("A form field is not valid text: send text fields in UTF-8.") from None


def file_part(form: FormMultiDict, field: str) -> UploadFile | None:
    """The one file part called ``field``, or None when the form has none.

    Raises:
        ValidationFailed: the part is a plain field, not a file (422, as FastAPI).
        InvalidRequest: several parts carry that name (400).
    """
    values = form.getall(field) if field in form else []
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"Send one '{field}' file; the form holds {len(values)}.", param=field)
    if not isinstance(values[0], UploadFile):
        raise ValidationFailed(f"Expected UploadFile, received: {type(values[0]).__name__}", ["body", field])
    return values[0]


def text_field(form: FormMultiDict, field: str) -> str | None:
    """A plain form field's value (the last one sent), None when absent.

    Raises:
        ValidationFailed: the field is a file (422).
    """
    if field not in form:
        return None
    value = form.getall(field)[-1]
    if not isinstance(value, str):
        raise ValidationFailed("Input should be a valid string", ["body", field], kind="string_type")
    return value


async def image_from_upload(upload: UploadFile, field: str) -> ImagePart:
    """The upload as an image part for ``gateway.media`` (which decodes it under the server's limits).

    Raises:
        InvalidRequest: its declared type is not an image, or contradicts the bytes (400).
    """
    data = await upload.read()
    declared = next((value for key, value in upload.headers.items() if key.lower() == "content-type"), "")
    check_declared_type(declared, data, field)
    return ImagePart(base64.b64encode(data).decode("ascii"), "base64")


async def close_files(form: FormMultiDict) -> None:
    """Close (and so delete) every file part's temporary file."""
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            await value.close()
