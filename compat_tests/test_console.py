"""The browser console (``GET /ui``) in a real browser: Debian's chromium driven by Playwright, against real
servers (the default MiniLM model; a second one with an API key).

Screenshots of each view are saved to ``$GATEWAY_SCREENSHOTS`` (default: ``screenshots/`` at the repository
root, gitignored), with the page weight of a first load in ``page-weight.txt``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from compat_tests.conftest import DEFAULT_ALIAS
from compat_tests.server import RunningServer, run_server
from compat_tests.test_production_lifecycle import get_or_none, wait_until

CHROMIUM = os.environ.get("GATEWAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("GATEWAY_SCREENSHOTS", Path(__file__).resolve().parents[1] / "screenshots"))
KEY = "sk-console-browser-test"
CLIP, RERANKER = "tiny-clip", "tiny-reranker"
TIMEOUT_MS = 60_000  # a loaded 2-core CI box: events, never sleeps, but generous waits

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [test] extra)")
if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; or set GATEWAY_CHROMIUM)",
                allow_module_level=True)

expect = sync_api.expect
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A fresh browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, name: str, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / name, full_page=full_page)


@pytest.fixture
def page(browser) -> Iterator[Page]:
    opened = Page(browser)
    yield opened
    opened.context.close()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An API key, a tiny random CLIP (texts and images) and a tiny random cross-encoder."""
    from tests.tiny_dual import build_tiny_clip
    from tests.tiny_models import build_tiny_cross_encoder

    workdir = tmp_path_factory.mktemp("console-keyed")
    (workdir / "gateway.toml").write_text(
        f'[[models]]\nname = "{CLIP}"\nsource = "{build_tiny_clip(workdir / "clip")}"\n\n'
        f'[[models]]\nname = "{RERANKER}"\nsource = "{build_tiny_cross_encoder(workdir / "reranker")}"\n'
        'task = "rerank"\n')
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, env={"GATEWAY_API_KEYS": KEY}, args=args) as running:
        yield running


def enter_key(page: Page, key: str) -> None:
    page.page.fill("#key-input", key)
    page.page.click("#key-form button[type=submit]")


def png_base64(seed: int) -> str:
    """A small random PNG, base64."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# A drop of image files on the drop zone, as the browser fires it for files dragged from the desktop.
DROP = """([names, contents]) => {
  const transfer = new DataTransfer();
  names.forEach((name, i) => {
    const bytes = Uint8Array.from(atob(contents[i]), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type: "image/png" }));
  });
  document.getElementById("drop-zone").dispatchEvent(
    new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def open_console(page: Page, server: RunningServer, view: str = "models") -> None:
    page.page.goto(f"{server.url}/ui#{view}")
    page.page.wait_for_selector("body[data-loaded=true]")  # /health and /v1/models answered


def cells(page) -> np.ndarray:
    """The heatmap's values as shown, (n, n)."""
    rows = page.locator("#heatmap tbody tr")
    return np.array([[float(text) for text in rows.nth(i).locator("td").all_text_contents()]
                     for i in range(rows.count())])


def curl_body(snippet: str) -> dict:
    """The JSON body of a curl snippet ``... -d '<json>'`` (single quotes escaped as ``'\\''``)."""
    quoted = snippet.split(" -d ", 1)[1]
    return json.loads(quoted[1:-1].replace("'\\''", "'"))


def test_the_model_cards_match_health_with_no_console_errors(server, page):
    open_console(page, server)
    health = httpx.get(f"{server.url}/health").json()
    cards = page.page.locator("article.card")
    expect(cards).to_have_count(len(health["models"]))
    for model in health["models"]:
        card = page.page.locator(f'article.card[data-model="{model["name"]}"]')
        expect(card.locator("h3")).to_have_text(model["name"])

        def field(name: str, card=card):
            return card.locator(f'dd[data-field="{name}"]')

        expect(field("state")).to_have_text(model["state"])
        expect(field("engine")).to_have_text(model["engine"])
        expect(field("device")).to_have_text(model["device"])
        expect(field("task")).to_have_text(model["task"])
        precision = ", ".join(filter(None, [model["dtype"], model["quantization"]]))
        expect(field("precision")).to_have_text(precision)
        expect(field("modalities")).to_have_text(", ".join(model["modalities"]))
        expect(field("queue")).to_have_text(f'{model["queued_inputs"]} inputs')
        expect(field("aliases")).to_have_text(", ".join(model["aliases"]))
    expect(page.page.locator("#version")).to_have_text(f'v{health["version"]}')
    expect(page.page.locator("#view-models .note")).to_contain_text("admin API")
    page.shot("console-models.png")
    assert page.errors == []


def test_the_heatmap_shows_the_apis_cosines_and_the_exact_request(server, page):
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stocks fell sharply today.",
             "<img src=x onerror=alert(1)> & 'quotes'"]  # shown as text, never parsed as HTML
    open_console(page, server, "playground")
    page.page.fill("#sim-texts", "\n".join(texts))
    page.page.click("#sim-run")
    page.page.wait_for_selector("#heatmap td")
    expect(page.page.locator("#heatmap tbody tr")).to_have_count(len(texts))

    model = page.page.locator("#sim-model").input_value()
    answer = httpx.post(f"{server.url}/v1/embeddings", json={"model": model, "input": texts},
                        timeout=60).json()
    vectors = np.array([row["embedding"] for row in sorted(answer["data"], key=lambda r: r["index"])])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(cells(page.page), unit @ unit.T, atol=1e-3)

    header = page.page.locator("#heatmap thead th").nth(4)
    assert header.get_attribute("title") == texts[3]  # the raw text, escaped by the DOM
    assert page.page.locator("#heatmap img").count() == 0
    curl = page.page.locator('#sim-snippets pre[data-snippet="curl"]').text_content()
    assert curl_body(curl) == {"model": model, "input": texts, "encoding_format": "float"}
    assert curl.startswith(f"curl {server.url}/v1/embeddings ")
    python = page.page.locator('#sim-snippets pre[data-snippet="Python (openai)"]').text_content()
    compact = json.dumps(texts, separators=(",", ":"))  # JSON.stringify's spelling, also a Python literal
    assert f"client.embeddings.create(model={json.dumps(model)}, input={compact}" in python
    compile(python, "snippet", "exec")  # the snippet is valid Python
    page.shot("console-playground-similarity.png")
    assert page.errors == []


def test_a_rerank_shows_the_apis_order_with_scores(server, page):
    query = "Where do cats sleep?"
    documents = ["Stock prices dropped on Monday.", "Cats often sleep on soft blankets.",
                 "The recipe needs two eggs.", "A kitten naps in a basket."]
    open_console(page, server, "playground")
    page.page.fill("#rerank-query", query)
    page.page.fill("#rerank-docs", "\n".join(documents))
    page.page.click("#rerank-run")
    results = page.page.locator("#rerank-results li")
    expect(results).to_have_count(len(documents))

    model = page.page.locator("#rerank-model").input_value()
    body = {"model": model, "query": query, "documents": documents}
    answer = httpx.post(f"{server.url}/v2/rerank", json=body, timeout=60).json()
    api_order = [r["index"] for r in answer["results"]]
    assert [int(results.nth(i).get_attribute("data-index")) for i in range(len(documents))] == api_order
    shown = [float(s) for s in page.page.locator("#rerank-results .score").all_text_contents()]
    np.testing.assert_allclose(shown, [r["relevance_score"] for r in answer["results"]], atol=1e-4)
    assert page.page.locator("#rerank-results .doc").all_text_contents() == [documents[i] for i in api_order]
    curl = page.page.locator('#rerank-snippets pre[data-snippet="curl"]').text_content()
    assert curl_body(curl) == body
    python = page.page.locator('#rerank-snippets pre[data-snippet="Python (cohere)"]').text_content()
    compile(python, "snippet", "exec")
    page.shot("console-playground-rerank.png")
    assert page.errors == []


def test_live_load_charts_the_servers_metrics(server, page):
    open_console(page, server, "load")
    page.page.wait_for_selector("#view-load[data-points]")  # two scrapes of /metrics made a first point
    texts = [f"load test sentence number {i}" for i in range(64)]
    for _ in range(4):
        assert httpx.post(f"{server.url}/v1/embeddings", json={"model": DEFAULT_ALIAS, "input": texts},
                          timeout=60).status_code == 200
    # the next scrapes see the requests: the window's largest rates and latencies become positive, and
    # the three repeats were served from the embedding cache
    for chart in ("requests", "texts", "latency", "batch", "cache"):
        page.page.wait_for_function(  # a function, not an expression: the page's CSP forbids eval
            "chart => Number(document.getElementById(`chart-${chart}`).parentElement.dataset.max) > 0",
            arg=chart)
    assert page.page.locator("#view-load canvas").count() >= 5  # uPlot drew the five charts
    page.shot("console-live-load.png")
    assert page.errors == []


def test_page_weight_of_a_first_load(server, browser):
    opened = Page(browser)
    sizes: dict[str, int] = {}

    def finished(request) -> None:
        size = request.sizes()
        sizes[request.url] = size["responseBodySize"] + size["responseHeadersSize"]

    opened.page.on("requestfinished", finished)
    open_console(opened, server)
    opened.page.wait_for_selector("article.card")
    opened.page.wait_for_load_state("networkidle")
    static = {url: size for url, size in sizes.items() if urllib.parse.urlsplit(url).path.startswith("/ui")}
    total = sum(static.values())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "page-weight.txt").write_text(
        f"first load of /ui: {total} bytes for the page and its files, {sum(sizes.values())} bytes with the "
        f"API calls\n" + "".join(f"{size:>8} {url}\n" for url, size in sorted(sizes.items())))
    assert set(map(lambda u: urllib.parse.urlsplit(u).path, static)) >= {
        "/ui", "/ui/static/app.js", "/ui/static/app.css", "/ui/static/vendor/uPlot.iife.min.js"}
    assert all(urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(server.url).netloc for url in sizes)
    opened.context.close()


def test_a_wrong_key_shows_a_clear_message_and_the_right_key_opens_the_console(keyed_server, page):
    page.page.goto(f"{keyed_server.url}/ui")
    expect(page.page.locator("#key-panel")).to_be_visible()
    expect(page.page.locator("#key-message")).to_contain_text("needs an API key")

    enter_key(page, "sk-wrong")
    expect(page.page.locator("#key-message")).to_contain_text("refused this API key")
    expect(page.page.locator("#key-message")).to_contain_text("401")
    expect(page.page.locator("article.card")).to_have_count(0)
    page.shot("console-wrong-key.png")
    assert not re.search("sk-wrong", page.page.content())  # the key is never shown

    enter_key(page, KEY)
    expect(page.page.locator("#key-panel")).to_be_hidden()
    expect(page.page.locator("article.card")).to_have_count(2)
    reranker_task = page.page.locator(f'article.card[data-model="{RERANKER}"] dd[data-field="task"]')
    expect(reranker_task).to_have_text("rerank")
    assert page.page.evaluate("sessionStorage.getItem('gateway.apiKey')") == KEY
    assert page.page.evaluate("localStorage.length") == 0  # kept for this tab only
    page.page.goto(f"{keyed_server.url}/ui#load")  # the stored key also reads /metrics
    page.page.wait_for_selector("#view-load[data-points]")
    expect(page.page.locator("#load-error")).to_be_empty()


def test_dropped_images_join_the_heatmap_and_a_cross_encoder_reranks(keyed_server, page):
    # the key as the key form stores it, before the page's script runs: no 401 on the way
    page.context.add_init_script(f"sessionStorage.setItem('gateway.apiKey', {json.dumps(KEY)})")
    open_console(page, keyed_server, "playground")
    page.page.select_option("#sim-model", CLIP)
    expect(page.page.locator("#drop-zone")).to_have_text("Drop images here")
    texts = ["a photo of a cat", "a red square"]
    images = [png_base64(seed) for seed in range(2)]
    page.page.fill("#sim-texts", "\n".join(texts))
    page.page.evaluate(DROP, [["one.png", "two.png"], images])
    expect(page.page.locator("#dropped-images img")).to_have_count(2)
    page.page.click("#sim-run")
    expect(page.page.locator("#heatmap tbody tr")).to_have_count(4)

    inputs = [*texts, *({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}
                        for b64 in images)]
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.post(f"{keyed_server.url}/v1/embeddings", json={"model": CLIP, "input": inputs},
                        headers=headers, timeout=60).json()
    vectors = np.array([row["embedding"] for row in sorted(answer["data"], key=lambda r: r["index"])])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(cells(page.page), unit @ unit.T, atol=1e-3)
    curl = page.page.locator('#sim-snippets pre[data-snippet="curl"]')
    expect(curl).to_contain_text("characters)")  # the image data is shortened on screen

    expect(page.page.locator("#rerank-model")).to_have_value(RERANKER)  # a cross-encoder first
    page.page.click("#rerank-run")
    results = page.page.locator("#rerank-results li")
    expect(results).to_have_count(3)
    body = {"model": RERANKER, "query": page.page.locator("#rerank-query").input_value(),
            "documents": page.page.locator("#rerank-docs").input_value().split("\n")}
    ranked = httpx.post(f"{keyed_server.url}/v2/rerank", json=body, headers=headers, timeout=60).json()
    assert [int(results.nth(i).get_attribute("data-index")) for i in range(3)] == \
        [r["index"] for r in ranked["results"]]
    page.shot("console-playground-images.png")
    assert page.errors == []


def test_the_swagger_docs_render_offline_from_local_files(server, page):
    urls: list[str] = []
    page.page.on("request", lambda request: urls.append(request.url))
    page.page.goto(f"{server.url}/schema/swagger")
    expect(page.page.locator(".opblock").first).to_be_visible()  # swagger-ui rendered the operations
    expect(page.page.locator(".opblock-summary-path", has_text="/v1/embeddings").first).to_be_visible()
    host = urllib.parse.urlsplit(server.url).netloc
    assert all(urllib.parse.urlsplit(url).netloc == host for url in urls if not url.startswith("data:")), urls
    page.shot("swagger-offline.png", full_page=False)
    assert page.errors == []


def test_a_model_that_failed_to_load_shows_its_cause(tmp_path, page):
    workdir = tmp_path / "broken"
    workdir.mkdir()
    missing = workdir / "no-such-model"
    (workdir / "gateway.toml").write_text(f'[[models]]\nname = "<b>broken</b>"\nsource = "{missing}"\n')
    with run_server(workdir, args=["--config", str(workdir / "gateway.toml")], wait_ready=False) as broken:
        wait_until(lambda: get_or_none(f"{broken.url}/health") is not None, what="the port")
        page.page.goto(f"{broken.url}/ui")
        card = page.page.locator("article.card")
        expect(card.locator('dd[data-field="state"]')).to_have_text("failed")  # polled until the load fails
        cause = httpx.get(f"{broken.url}/health").json()["models"][0]["error"]
        assert cause
        expect(card.locator('dd[data-field="cause"]')).to_have_text(cause)
        expect(card.locator("h3")).to_have_text("<b>broken</b>")  # a name is text, never markup
        assert card.locator("h3 b").count() == 0
        page.shot("console-failed-model.png")
    assert page.errors == []
