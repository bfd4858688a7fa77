"""The console's routes in-process (``GET /ui``, its static files, the offline Swagger UI): headers, auth,
``ui = false``. The page itself is tested in a real browser in compat_tests/test_console.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from litestar.testing import TestClient

from gateway.config import Settings
from gateway.engines import ModelSpec, Tokens
from gateway.http.app import create_app

KEY = "sk-console-test"
STATIC = ["/ui/static/app.js", "/ui/static/app.css", "/ui/static/vendor/uPlot.iife.min.js",
          "/ui/static/vendor/uPlot.min.css"]


class FakeEngine:
    """Embeds every text as the same vector: these tests never look at vectors."""

    spec = ModelSpec(name="fake", task="embed", max_tokens=32, dim=4, engine="fake", device="cpu")

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> list[Tokens]:
        return [Tokens([1, 2]) for _ in texts]

    def embed(self, batch: list[Tokens]) -> np.ndarray:
        return np.ones((len(batch), 4), np.float32)


@pytest.fixture
def make_client(monkeypatch):
    monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
    monkeypatch.setattr("gateway.serving.registry.load_engine", lambda config, path, **options: FakeEngine())

    def make(**settings) -> TestClient:
        return TestClient(create_app(Settings(_env_file=None, model="fake", **settings)))

    return make


def test_the_page_and_its_files_carry_a_strict_csp(make_client):
    with make_client() as client:
        page = client.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for response in [page, *(client.get(path) for path in STATIC)]:
            assert response.status_code == 200, response.url
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self';" in csp and "style-src 'self';" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        # no inline script or style in the page: the CSP would block them
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text) and "<style" not in page.text
        assert not re.search(r"\s(style|on[a-z]+)=", page.text)  # nor style or event handler attributes


def test_with_keys_the_static_files_are_public_and_the_data_routes_are_not(make_client):
    with make_client(api_keys=KEY) as client:
        assert client.get("/ui").status_code == 200
        assert all(client.get(path).status_code == 200 for path in STATIC)
        assert client.get("/v1/models").status_code == 401  # the page's data still needs the key
        assert client.get("/metrics").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/ui/static/../../auth.py").status_code in (400, 404)  # no way out of static/


def test_ui_false_turns_the_console_off(make_client):
    with make_client(ui=False) as client:
        assert client.get("/ui").status_code == 404
        assert client.get("/ui/static/app.js").status_code == 404
        assert client.get("/health").status_code == 200


def test_the_swagger_page_loads_only_local_files(make_client):
    with make_client(api_keys=KEY) as client:
        headers = {"Authorization": f"Bearer {KEY}"}
        for docs in ("/schema/swagger", "/schema"):
            page = client.get(docs, headers=headers)
            assert page.status_code == 200 and "SwaggerUIBundle" in page.text
            urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
            assert len(urls) >= 4, urls  # the bundle, the preset, the CSS, the icon
            for url in urls:
                assert url.startswith("/") and not url.startswith("//"), f"not local: {url}"
                assert client.get(url).status_code == 200, url  # public: static files, no data
        assert client.get("/schema/openapi.json", headers=headers).json()["info"]["title"] == "gateway"
