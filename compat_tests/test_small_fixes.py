"""Small things a new user hit (issue 22), through the real server: the ``/metrics`` Content-Type, the
405 message, the Cohere "exactly one of" message, and no tqdm progress bar in the server's log."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from compat_tests.production import METRICS_KEY, bearer


def test_metrics_content_type_names_its_charset_once(production_server):
    response = httpx.get(f"{production_server.url}/metrics", headers=bearer(METRICS_KEY), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert response.headers["content-type"].count("charset") == 1


@pytest.mark.parametrize("method, path, allowed", [("GET", "/v1/embeddings", "POST"),
                                                   ("DELETE", "/v1/rerank", "POST"),
                                                   ("POST", "/health", "GET")])
def test_405_says_which_methods_the_route_takes(server, method, path, allowed):
    response = httpx.request(method, f"{server.url}{path}", timeout=10)
    assert response.status_code == 405
    body = response.json()
    message = body["error"]["message"] if "error" in body else body["message"]
    assert message == f"Method not allowed: this route takes {allowed}."


@pytest.mark.parametrize("path, body, message", [
    ("/v2/embed", {"model": "all-MiniLM-L6-v2", "texts": ["x"], "inputs": []},
     "send exactly one of 'texts', 'images' or 'inputs'"),
    ("/v2/embed", {"model": "all-MiniLM-L6-v2"}, "send exactly one of 'texts', 'images' or 'inputs'"),
    ("/v1/embed", {"texts": ["x"], "images": ["data:image/png;base64,AAAA"]},
     "send exactly one of 'texts' or 'images'"),
])
def test_cohere_names_the_exclusive_fields_in_plain_english(server, path, body, message):
    response = httpx.post(f"{server.url}{path}", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"message": message}


@pytest.mark.parametrize("fixture", ["server", "production_server"])  # text log, JSON log
def test_a_served_model_leaves_no_progress_bar_in_the_log(request, fixture):
    running = request.getfixturevalue(fixture)  # /ready answered: the model has loaded
    log = running.log()
    assert "ready on" in log  # the load was logged, so its bar would be there
    assert "Loading weights" not in log and "it/s]" not in log
