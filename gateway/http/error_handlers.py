"""Exception handlers: every failure, Litestar's own included, rendered in the called route's wire format.

The format is chosen by path (``ERROR_FORMATS``); a ``GatewayError`` may force one (``error.dialect``),
as the TEI body on the shared ``/rerank`` path does. Unexpected exceptions become a generic 500 whose
message leaks nothing; the server keeps serving.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable

from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_413_REQUEST_ENTITY_TOO_LARGE

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
)
from gateway.protocol import openai
from gateway.serving import request_context

log = logging.getLogger(__name__)

Renderer = Callable[[GatewayError], object]

# path -> error body renderer; anything not listed answers in the OpenAI shape.
ERROR_FORMATS: dict[str, Renderer] = {}


def register_error_format(paths: list[str], renderer: Renderer) -> None:
    """Make errors on ``paths`` render with ``renderer`` (called by protocol route modules)."""
    for path in paths:
        ERROR_FORMATS[path] = renderer


def render(request: Request, error: GatewayError) -> Response:
    """The error as a response in the format of ``request``'s route, with its status and headers."""
    renderer = getattr(error, "renderer", None) or ERROR_FORMATS.get(request.url.path.rstrip("/") or "/")
    body = (renderer or openai.error_body)(error)
    return Response(body, status_code=error.status, headers=error.headers, media_type="application/json")


def from_http_exception(exc: HTTPException) -> GatewayError:
    """Translate Litestar's own exceptions (routing, body parsing, validation, size) to ours."""
    if isinstance(exc, NotFoundException):
        return RouteNotFound("Unknown route. See /schema for the API.")
    if isinstance(exc, MethodNotAllowedException):  # Litestar's detail only repeats "Method Not Allowed"
        allow = (exc.headers or {}).get("allow", "")
        allowed = [m.strip() for m in allow.split(",") if m.strip() not in ("", "OPTIONS")]
        return MethodNotAllowed(f"Method not allowed: this route takes {', '.join(allowed)}." if allowed
                                else "Method not allowed on this route.")
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        return PayloadTooLarge("The request body is too large.")
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if type(exc) is ClientException and exc.status_code == HTTP_400_BAD_REQUEST:  # the body did not decode
        return InvalidRequest(f"We could not parse the JSON body of your request ({exc.detail}).")
    error = GatewayError(str(exc.detail))
    error.status = exc.status_code
    error.type = "invalid_request_error" if exc.status_code < 500 else "api_error"
    return error


def _validation_error(exc: ValidationException) -> InvalidRequest:
    """Litestar's body validation error -> 400 naming the offending field in ``param``."""
    details = exc.extra if isinstance(exc.extra, list) else []
    first = details[0] if details and isinstance(details[0], dict) else {}
    key, message = first.get("key"), str(first.get("message") or exc.detail)
    if key == "data":  # the body as a whole: empty, not an object, or a missing required field
        if missing := re.search(r"missing required field `([^`]+)`", message):
            return InvalidRequest(f"Missing required parameter: '{missing[1]}'.", param=missing[1])
        if message == "'data'":
            return InvalidRequest("The request body is empty: send a JSON object.")
        return InvalidRequest(f"Invalid request body: {message}")
    if key:
        return InvalidRequest(f"Invalid value for '{key}': {message}", param=key)
    return InvalidRequest(message)


def handle_gateway_error(request: Request, exc: GatewayError) -> Response:
    return render(request, with_request_id(exc) if exc.status == 500 else exc)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    return render(request, from_http_exception(exc))


def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug (an engine's ``ValueError`` included): the traceback is logged with the request id, and the
    client gets a 500 naming that id (also in ``X-Request-ID``) and nothing of the cause."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    error = GatewayError("The server had an error while processing your request.")
    return render(request, with_request_id(error))


def with_request_id(error: GatewayError) -> GatewayError:
    """A server error whose message ends with the request's id, for the client to quote (a copy: one
    ``EngineFailure`` fails every request of a batch)."""
    info = request_context.current()
    if info is None or not info.request_id:
        return error
    named = copy.copy(error)
    named.message = f"{error.message.rstrip('.')} (request id {info.request_id})."
    return named


EXCEPTION_HANDLERS = {
    GatewayError: handle_gateway_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
