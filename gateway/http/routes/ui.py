"""The browser console (``GET /ui``) and the API docs' Swagger UI files, served from the package (offline).

Both are static files holding no data: the console's page reads everything from the JSON routes, sending
the API key the person typed (kept in the browser's ``sessionStorage``) as ``Authorization: Bearer``. So
the files are public (``opt[PUBLIC_STATIC]``: the key guard lets them through, ``gateway.http.auth``) and
no data route is opened. Every console response carries a strict Content-Security-Policy (no inline
script or style, no other origin), so a model name or text that slipped past the page's escaping still
could not run.

- ``GET /ui``: ``static/index.html``; ``GET /ui/static/...``: its script, style and the vendored uPlot.
- ``GET /static/swagger-ui/...``: swagger-ui's files (``ui/swagger-ui``, from npm's ``swagger-ui-dist``),
  which the ``/schema/swagger`` page loads instead of a CDN (``docs_plugins``).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router

from gateway.http.auth import PUBLIC_STATIC

STATIC_DIR = Path(__file__).resolve().parents[1] / "ui" / "static"
# swagger-ui-dist from npm, vendored (PyPI's swagger-ui-bundle holds swagger-ui 4, which refuses the
# OpenAPI 3.1 schema Litestar writes): see its README there
SWAGGER_DIR = Path(__file__).resolve().parents[1] / "ui" / "swagger-ui"
SWAGGER_PREFIX = "/static/swagger-ui"
# 'self' only: no inline script or style, no eval, no other origin; data:/blob: images are the dropped
# images' previews; frame-ancestors: no clickjacking frame around a page that holds a key.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a new server version's files show at once
}


@get("/ui", include_in_schema=False, opt={PUBLIC_STATIC: True}, sync_to_thread=False)
def console() -> Response[bytes]:
    """The console's page (it asks for an API key when the server answers 401)."""
    return Response((STATIC_DIR / "index.html").read_bytes(), media_type="text/html; charset=utf-8",
                    headers=SECURITY_HEADERS)


async def _add_security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def console_routes() -> list:
    """The console's page and its static files."""
    files = create_static_files_router("/ui/static", directories=[STATIC_DIR], name="ui_static",
                                       opt={PUBLIC_STATIC: True}, after_request=_add_security_headers)
    return [console, files]


def swagger_routes() -> list:
    """The swagger-ui files (JS, CSS, favicon) the docs page loads."""
    return [create_static_files_router(SWAGGER_PREFIX, directories=[SWAGGER_DIR],
                                       name="swagger_ui", opt={PUBLIC_STATIC: True})]


def docs_plugins() -> list:
    """The OpenAPI docs renderers: Swagger UI at ``/schema`` and ``/schema/swagger`` from local files, and
    the JSON / YAML schema (``/schema/openapi.json``, ``/schema/openapi.yaml``)."""
    swagger = SwaggerRenderPlugin(
        path=["/swagger", "/"],
        js_url=f"{SWAGGER_PREFIX}/swagger-ui-bundle.js",
        css_url=f"{SWAGGER_PREFIX}/swagger-ui.css",
        standalone_preset_js_url=f"{SWAGGER_PREFIX}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_PREFIX}/favicon-32x32.png'>",
    )
    return [swagger, JsonRenderPlugin(), YamlRenderPlugin()]
