"""The error tree. Each error knows its HTTP status and its OpenAI-style type and code; the app's
exception handlers render it in the wire format of the route that was called
(see ``gateway.http.error_handlers``).

    GatewayError (500, api_error)
    ├── InvalidRequest (400, invalid_request_error)
    │   └── UnsupportedMediaType (415)
    ├── AuthenticationFailed (401, invalid_request_error / invalid_api_key)
    ├── PermissionDenied (403, permission_error)
    ├── ModelNotFound (404, invalid_request_error / model_not_found)
    ├── RouteNotFound (404) / MethodNotAllowed (405)
    ├── PayloadTooLarge (413)
    ├── Overloaded (429, rate_limit_error, Retry-After)
    │   └── RateLimited (429, requests / tokens, rate_limit_exceeded): a key's rpm / tpm quota is spent
    ├── RequestTimeout (408)
    ├── ClientDisconnected (499): the client left before the answer; nobody reads it
    ├── EngineFailure (500, api_error): a forward pass raised
    └── NotReady (503, api_error): the model is still loading
        └── ModelUnavailable (503, Retry-After): no replica can take it now (Ray Serve)

    UnprocessableInput (no status of its own): raised by engines for an input the model cannot process;
    the serving layer turns it, and only it, into an ``InvalidRequest`` naming the request's field. Any
    other exception an engine raises is a server bug: a 500 with a request id and a logged traceback.
"""

from __future__ import annotations

import math


class GatewayError(Exception):
    """Base class: an error with an HTTP status and OpenAI ``type``/``code``/``param`` fields."""

    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. Retry-After)."""
        return {}


class InvalidRequest(GatewayError):
    status, type = 400, "invalid_request_error"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    code = "unsupported_media_type"


class AuthenticationFailed(GatewayError):
    status, type, code = 401, "invalid_request_error", "invalid_api_key"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}  # RFC 6750 section 3: the scheme the client must use


class PermissionDenied(GatewayError):
    status, type, code = 403, "permission_error", "model_not_allowed"


class ModelNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class RouteNotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "not_found"


class MethodNotAllowed(GatewayError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "payload_too_large"


class RequestTimeout(GatewayError):
    status, type, code = 408, "timeout_error", "request_timeout"


class ClientDisconnected(GatewayError):
    """The client closed the connection while its request waited (nginx's 499); its work was dropped."""

    status, type, code = 499, "invalid_request_error", "client_closed_request"


class Overloaded(GatewayError):
    status, type, code = 429, "rate_limit_error", "server_overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class RateLimited(Overloaded):
    """An API key spent its requests- or tokens-per-minute quota (``gateway.serving.rate_limits``).

    As OpenAI's API: ``type`` names the quota (``requests`` or ``tokens``), ``Retry-After`` is whole
    seconds and ``retry-after-ms`` milliseconds until the quota frees enough (the openai SDK reads both).
    """

    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit: str, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s=max(1, math.ceil(retry_after_s)))
        self.type = limit
        self.retry_after_ms = max(1, math.ceil(retry_after_s * 1000))

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "retry-after-ms": str(self.retry_after_ms)}


class EngineFailure(GatewayError):
    status, type, code = 500, "api_error", "engine_error"


class NotReady(GatewayError):
    status, type, code = 503, "api_error", "model_not_ready"


class ModelUnavailable(NotReady):
    """No replica of the model can serve the request right now: the one holding it died, or none is running
    yet (Ray Serve deployments). Clients should retry after ``Retry-After`` seconds."""

    code = "model_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class UnprocessableInput(Exception):
    """This input cannot be processed by this model: the client's fault, answered with a 400.

    Engines (and image preparation) raise it at the places where the input itself is wrong: a token id
    outside the vocabulary, a text holding tokens reserved for images, an image the processor cannot
    take (aspect ratio, size), several parts for a model that does not fuse them, a text with no tokens.
    The message says what is wrong and names the input's index where known; it is sent to the client.

    It is deliberately not a ``ValueError``: the serving layer catches only this class for a 400, so a
    ``ValueError`` from a bug in an engine or a library is a 500, never blamed on the client.
    """
