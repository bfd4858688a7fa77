// gateway console: plain JavaScript, no build step. Every piece of data comes from the server's API routes
// (/health, /v1/models, /v1/embeddings, /v2/rerank, /metrics), called with the API key the person typed
// (kept only in sessionStorage). Data is put on the page with textContent, never as HTML.
"use strict";

(() => {
  const KEY_STORE = "gateway.apiKey";
  const POLL_MS = 2000;  // /metrics
  const HEALTH_POLL_MS = 5000;  // model cards
  const WINDOW_S = 600;  // live load charts: the last 10 minutes
  // routes the console itself calls while open: left out of the live load, which shows the API's load
  const CONSOLE_ROUTES = [/^\/metrics$/, /^\/health$/, /^\/ready$/, /^\/ui/, /^\/static\//, /^\/schema/];

  const $ = (id) => document.getElementById(id);

  /** An element with attributes and children (strings become text nodes: never parsed as HTML). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  }

  // ---- API calls ------------------------------------------------------------------------------------

  class AuthError extends Error {}

  function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

  /** The message of an error body in any of the server's wire formats (OpenAI, Cohere, TEI, ...). */
  function errorMessage(body, fallback) {
    if (body && typeof body === "object") {
      const error = body.error;
      if (error && typeof error === "object" && error.message) return String(error.message);
      if (typeof error === "string") return error;
      if (body.message) return String(body.message);
      if (typeof body.detail === "string") return body.detail;
    }
    return fallback;
  }

  /**
   * Call an API route with the stored key. Resolves to the parsed JSON (or text with asText).
   * Throws AuthError on a 401 (after asking for a key unless quietAuth), Error with the server's
   * message on any other non-2xx answer.
   */
  async function api(path, { body, asText = false, quietAuth = false } = {}) {
    const headers = {};
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: body === undefined ? "GET" : "POST", headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.ok) return asText ? response.text() : response.json();
    const text = await response.text();
    let parsed = null;
    try { parsed = JSON.parse(text); } catch { /* not JSON: use the text */ }
    const message = errorMessage(parsed, text.slice(0, 300) || response.statusText);
    if (response.status === 401) {
      if (!quietAuth) {
        askForKey(key ? `The server refused this API key (401: ${message}). Check it and enter it again.`
          : "This server needs an API key: enter one to see its models and use them.");
      }
      throw new AuthError(message);
    }
    throw new Error(`${response.status}: ${message}`);
  }

  // ---- API key ------------------------------------------------------------------------------------

  function askForKey(message) {
    $("key-message").textContent = message;
    $("key-panel").hidden = false;
    $("key-input").focus();
  }

  function setupKeyPanel() {
    $("key-button").addEventListener("click", () => askForKey(apiKey() ? "A key is set for this tab." : ""));
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
      $("key-input").value = "";
      $("key-panel").hidden = true;
      $("key-message").textContent = "";
      metricsBlocked = false;
      modelsBlocked = false;
      refreshModels();
    });
    $("key-forget").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      $("key-message").textContent = "Key forgotten.";
    });
  }

  // ---- tabs ---------------------------------------------------------------------------------------

  function showView() {
    const wanted = (location.hash || "#models").slice(1);
    const view = document.querySelector(`[data-view="${CSS.escape(wanted)}"]`) ? wanted : "models";
    for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.dataset.view !== view;
    for (const link of document.querySelectorAll("nav a[data-tab]")) {
      link.classList.toggle("active", link.dataset.tab === view);
    }
    if (view === "load") drawCharts();
  }

  // ---- models -------------------------------------------------------------------------------------

  let models = [];  // [{name, task, modalities, ...}] from /health, or names only from /v1/models
  let modelsBlocked = false;  // a 401: stop polling until a key is entered

  function formatBytes(bytes) {
    if (bytes === null || bytes === undefined) return null;
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  function formatMs(ms) { return ms === null || ms === undefined ? null : `${Number(ms).toFixed(1)} ms`; }

  /** One model card; every value is text (model names and errors come from the server's config). */
  function modelCard(model) {
    const state = String(model.state || "unknown");
    const precision = [model.dtype, model.quantization].filter(Boolean).join(", ");
    const memory = model.memory_bytes ?? model.weights_bytes;
    const outputs = Array.isArray(model.outputs) ? model.outputs.join(", ") : model.outputs;
    const rows = [
      ["state", el("span", { class: `state state-${state}` }, state)],
      ["cause", model.error],
      ["aliases", (model.aliases || []).join(", ") || null],
      ["task", model.task],
      ["engine", model.engine],
      ["device", model.device],
      ["precision", precision || null],
      ["modalities", Array.isArray(model.modalities) ? model.modalities.join(", ") : null],
      ["outputs", outputs || null],
      ["memory", formatBytes(memory)],
      ["load time", formatMs(model.load_ms)],
      ["last batch", formatMs(model.last_batch_ms)],
      ["queue", model.queued_inputs === undefined ? null : `${model.queued_inputs} inputs`],
    ];
    const list = el("dl");
    for (const [label, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", {}, label), el("dd", { "data-field": label }, value));
    }
    return el("article", { class: "card", "data-model": model.name }, el("h3", {}, model.name), list);
  }

  function renderModels(health) {
    $("version").textContent = health.version ? `v${health.version}` : "";
    $("server-status").textContent = health.status ? `status: ${health.status}` : "";
    const memory = health.memory;
    $("process-memory").textContent = memory && memory.rss_bytes !== null && memory.rss_bytes !== undefined
      ? `Server process memory (all models together): ${formatBytes(memory.rss_bytes)} resident, `
        + `peak ${formatBytes(memory.peak_rss_bytes)}.` : "";
    $("model-cards").replaceChildren(...models.map(modelCard));
  }

  function fillSelect(select, names, preferred) {
    const current = select.value;
    select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    if (names.includes(current)) select.value = current;
    else if (preferred && names.includes(preferred)) select.value = preferred;
  }

  function fillModelSelects() {
    const embedders = models.filter((m) => !m.task || m.task === "embed").map((m) => m.name);
    const cross = models.find((m) => m.task === "rerank");
    fillSelect($("sim-model"), embedders);
    fillSelect($("rerank-model"), models.map((m) => m.name), cross && cross.name);
    updateDropZone();
  }

  /** Read /health (and /v1/models, which lists what this key may use) and redraw the cards. */
  async function refreshModels() {
    try {
      const [health, list] = await Promise.all([api("/health"), api("/v1/models")]);
      const visible = new Set((list.data || []).map((m) => m.id));
      if (Array.isArray(health.models)) {
        models = health.models.filter((m) => visible.has(m.name) || (m.aliases || []).some((a) => visible.has(a)));
      } else {  // /health without model details for this caller: names and modalities from /v1/models
        models = (list.data || []).map((m) => ({ name: m.id, modalities: m.modalities }));
      }
      $("models-error").textContent = "";
      renderModels(health);
      fillModelSelects();
      document.body.dataset.loaded = "true";
    } catch (error) {
      if (error instanceof AuthError) modelsBlocked = true;
      else $("models-error").textContent = `Could not read the models: ${error.message}`;
    }
  }

  // ---- request snippets ---------------------------------------------------------------------------

  const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;
  // data: URLs of dropped images are shortened on screen (Copy copies them whole)
  const shorten = (text) => text.replace(/data:image\/[a-z+.-]+;base64,[A-Za-z0-9+/=]{60,}/g,
    (url) => `${url.slice(0, 60)}…(${url.length} characters)`);

  function curlCommand(path, body) {
    return `curl ${location.origin}${path} -H 'Content-Type: application/json' `
      + `-H "Authorization: Bearer $GATEWAY_API_KEY" -d ${shellQuote(JSON.stringify(body))}`;
  }

  /** A Python literal of a JSON value (strings, numbers, lists and objects: the same text). */
  const py = (value) => JSON.stringify(value, null, 0);

  function showSnippets(container, snippets) {
    container.replaceChildren();
    for (const [title, code] of snippets) {
      const button = el("button", { type: "button", class: "copy" }, "Copy");
      button.addEventListener("click", async () => {
        await navigator.clipboard.writeText(code);
        button.textContent = "Copied";
      });
      const pre = el("pre", { "data-snippet": title }, shorten(code));
      container.append(el("details", { open: "" }, el("summary", {}, title, " "), pre, button));
    }
  }

  // ---- similarity ---------------------------------------------------------------------------------

  let images = [];  // [{name, url}] dropped images, as data: URLs

  function selectedModel(selectId) { return models.find((m) => m.name === $(selectId).value); }

  function acceptsImages() {
    const model = selectedModel("sim-model");
    return Boolean(model && Array.isArray(model.modalities) && model.modalities.includes("image"));
  }

  function updateDropZone() {
    const ok = acceptsImages();
    $("drop-zone").classList.toggle("disabled", !ok);
    $("drop-zone").textContent = ok ? "Drop images here" : "This model embeds text only (drop images with an image model)";
  }

  function setupDropZone() {
    const zone = $("drop-zone");
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (!acceptsImages()) { $("sim-error").textContent = "The selected model embeds text only."; return; }
      for (const file of event.dataTransfer.files) {
        if (!file.type.startsWith("image/")) continue;
        const reader = new FileReader();
        reader.addEventListener("load", () => {
          images.push({ name: file.name, url: reader.result });
          renderThumbs();
        });
        reader.readAsDataURL(file);
      }
    });
    $("sim-model").addEventListener("change", () => { updateDropZone(); if (!acceptsImages()) { images = []; renderThumbs(); } });
  }

  function renderThumbs() {
    $("dropped-images").replaceChildren(...images.map((image, i) => {
      const img = el("img", { src: image.url, alt: image.name, title: `${image.name} (click to remove)` });
      img.addEventListener("click", () => { images.splice(i, 1); renderThumbs(); });
      return img;
    }));
  }

  /** Cosine similarity of every pair of rows: (n, dim) -> (n, n). */
  function cosineMatrix(vectors) {
    const norms = vectors.map((v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0)));
    return vectors.map((a, i) => vectors.map((b, j) => {
      let dot = 0;
      for (let k = 0; k < a.length; k += 1) dot += a[k] * b[k];
      return dot / (norms[i] * norms[j]);
    }));
  }

  /** Cell colour of a cosine in [-1, 1]: white at 0, deeper blue towards 1, red towards -1. */
  function heatColor(value) {
    const strength = Math.min(1, Math.abs(value));
    return `hsl(${value >= 0 ? 220 : 0}, 70%, ${Math.round(97 - 55 * strength)}%)`;
  }

  function renderHeatmap(labels, matrix) {
    const short = (text) => (text.length > 40 ? `${text.slice(0, 39)}…` : text);
    const head = el("tr", {}, el("th"), ...labels.map((label) => el("th", { title: label, scope: "col" }, short(label))));
    const rows = matrix.map((row, i) => el("tr", {},
      el("th", { title: labels[i], scope: "row" }, short(labels[i])),
      ...row.map((value, j) => {
        const cell = el("td", { "data-row": i, "data-col": j, title: `${labels[i]} · ${labels[j]}` }, value.toFixed(3));
        cell.style.backgroundColor = heatColor(value);  // CSSOM: allowed by the style-src CSP
        if (Math.abs(value) > 0.6) cell.classList.add("light");
        return cell;
      })));
    $("heatmap").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function runSimilarity() {
    $("sim-error").textContent = "";
    const texts = $("sim-texts").value.split("\n").map((t) => t.trim()).filter(Boolean);
    const input = [...texts, ...images.map((image) => ({ type: "image_url", image_url: { url: image.url } }))];
    const labels = [...texts, ...images.map((image) => `[image] ${image.name}`)];
    if (input.length < 2) { $("sim-error").textContent = "Enter at least two texts (one per line) or images."; return; }
    const body = { model: $("sim-model").value, input, encoding_format: "float" };
    $("sim-run").disabled = true;
    try {
      const answer = await api("/v1/embeddings", { body });
      const vectors = [...answer.data].sort((a, b) => a.index - b.index).map((row) => row.embedding);
      renderHeatmap(labels, cosineMatrix(vectors));
      showSnippets($("sim-snippets"), [
        ["curl", curlCommand("/v1/embeddings", body)],
        ["Python (openai)", `import os\nfrom openai import OpenAI\n\n`
          + `client = OpenAI(base_url=${py(`${location.origin}/v1`)}, api_key=os.environ.get("GATEWAY_API_KEY", "unused"))\n`
          + `response = client.embeddings.create(model=${py(body.model)}, input=${py(input)}, encoding_format="float")\n`
          + `vectors = [row.embedding for row in response.data]`],
      ]);
    } catch (error) {
      $("sim-error").textContent = error instanceof AuthError ? `Not allowed: ${error.message}` : error.message;
    } finally {
      $("sim-run").disabled = false;
    }
  }

  // ---- rerank ---------------------------------------------------------------------------------------

  async function runRerank() {
    $("rerank-error").textContent = "";
    const query = $("rerank-query").value.trim();
    const documents = $("rerank-docs").value.split("\n").map((t) => t.trim()).filter(Boolean);
    if (!query || !documents.length) { $("rerank-error").textContent = "Enter a query and at least one document."; return; }
    const body = { model: $("rerank-model").value, query, documents };
    $("rerank-run").disabled = true;
    try {
      const answer = await api("/v2/rerank", { body });
      const scores = answer.results.map((r) => r.relevance_score);
      const low = Math.min(0, ...scores), high = Math.max(1, ...scores);
      $("rerank-results").replaceChildren(...answer.results.map((result) => el("li", { "data-index": result.index },
        el("div", { class: "row" },
          el("span", { class: "doc", title: documents[result.index] }, documents[result.index]),
          el("span", { class: "score" }, result.relevance_score.toFixed(4)),
          el("meter", { min: low, max: high, value: result.relevance_score })))));
      showSnippets($("rerank-snippets"), [
        ["curl", curlCommand("/v2/rerank", body)],
        ["Python (cohere)", `import os\nimport cohere\n\n`
          + `co = cohere.ClientV2(base_url=${py(location.origin)}, api_key=os.environ.get("GATEWAY_API_KEY", "unused"))\n`
          + `response = co.rerank(model=${py(body.model)}, query=${py(query)}, documents=${py(documents)})\n`
          + `ranking = [(r.index, r.relevance_score) for r in response.results]`],
      ]);
    } catch (error) {
      $("rerank-error").textContent = error instanceof AuthError ? `Not allowed: ${error.message}` : error.message;
    } finally {
      $("rerank-run").disabled = false;
    }
  }

  // ---- live load (from /metrics) ------------------------------------------------------------------

  /** Samples of the Prometheus text format: [{name, labels, value}] (comments and blank lines skipped). */
  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
      if (!match) continue;
      const labels = {};
      for (const pair of (match[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
      samples.push({ name: match[1], labels, value: Number(match[3]) });
    }
    return samples;
  }

  const isConsoleRoute = (route) => CONSOLE_ROUTES.some((pattern) => pattern.test(route || ""));

  /** Totals of one scrape: counters summed over labels, request-latency buckets summed by bound. */
  function totals(samples) {
    const sum = (name, keep = () => true) => samples.filter((s) => s.name === name && keep(s))
      .reduce((total, s) => total + s.value, 0);
    const apiRoute = (s) => !isConsoleRoute(s.labels.route);
    const buckets = new Map();
    for (const s of samples) {
      if (s.name !== "gateway_request_duration_seconds_bucket" || !apiRoute(s)) continue;
      const bound = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(bound, (buckets.get(bound) || 0) + s.value);
    }
    return {
      requests: sum("gateway_requests_total", apiRoute),
      texts: sum("gateway_inputs_total"),
      buckets,
      batchSum: sum("gateway_batch_size_sum"),
      batchCount: sum("gateway_batch_size_count"),
      hits: sum("gateway_cache_hits_total"),
      misses: sum("gateway_cache_misses_total"),
    };
  }

  /** Prometheus' histogram_quantile over cumulative bucket counts: linear within the bucket. */
  function quantile(q, bounds, counts) {
    const total = counts[counts.length - 1];
    if (!total) return null;
    const rank = q * total;
    for (let i = 0; i < bounds.length; i += 1) {
      if (counts[i] >= rank) {
        if (bounds[i] === Infinity) return i ? bounds[i - 1] : null;
        const lower = i ? bounds[i - 1] : 0, below = i ? counts[i - 1] : 0;
        const inBucket = counts[i] - below;
        return lower + (bounds[i] - lower) * (inBucket ? (rank - below) / inBucket : 0);
      }
    }
    return null;
  }

  // a counter that went down means the server restarted: the new value is the increase
  const increase = (now, before) => (now >= before ? now - before : now);

  /** The rates and latencies between two scrapes ``dt`` seconds apart (null: nothing happened). */
  function rates(now, before, dt) {
    const bounds = [...now.buckets.keys()].sort((a, b) => a - b);
    const counts = bounds.map((b) => increase(now.buckets.get(b), before.buckets.get(b) || 0));
    const p50 = quantile(0.5, bounds, counts), p95 = quantile(0.95, bounds, counts);
    const batches = increase(now.batchCount, before.batchCount);
    const looked = increase(now.hits, before.hits) + increase(now.misses, before.misses);
    return {
      requests: increase(now.requests, before.requests) / dt,
      texts: increase(now.texts, before.texts) / dt,
      p50: p50 === null ? null : p50 * 1000,
      p95: p95 === null ? null : p95 * 1000,
      batch: batches ? increase(now.batchSum, before.batchSum) / batches : null,
      cache: looked ? (100 * increase(now.hits, before.hits)) / looked : null,
    };
  }

  const CHARTS = {
    requests: { series: [["requests/s", "#2f6fde"]] },
    texts: { series: [["texts/s", "#1f8a4c"]] },
    latency: { series: [["p50 ms", "#2f6fde"], ["p95 ms", "#c53030"]] },
    batch: { series: [["inputs", "#6b46c1"]] },
    cache: { series: [["hit %", "#b7791f"]] },
  };
  const history = { time: [], requests: [], texts: [], p50: [], p95: [], batch: [], cache: [] };
  const plots = {};
  let lastScrape = null;
  let metricsBlocked = false;

  function chartData(name) {
    const columns = name === "latency" ? [history.p50, history.p95] : [history[name]];
    return [history.time, ...columns];
  }

  function drawCharts() {
    if ($("view-load").hidden || typeof uPlot === "undefined") return;
    for (const [name, chart] of Object.entries(CHARTS)) {
      const box = $(`chart-${name}`);
      if (!plots[name]) {
        const options = {
          width: Math.max(300, box.clientWidth), height: 170, legend: { show: true },
          scales: { x: { time: true }, y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] } },
          series: [{}, ...chart.series.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: false }))],
        };
        plots[name] = new uPlot(options, chartData(name), box);
      } else {
        plots[name].setData(chartData(name));
      }
    }
  }

  function record(now, values) {
    history.time.push(now);
    for (const key of ["requests", "texts", "p50", "p95", "batch", "cache"]) history[key].push(values[key]);
    while (history.time.length && history.time[0] < now - WINDOW_S) {
      for (const column of Object.values(history)) column.shift();
    }
    for (const name of Object.keys(CHARTS)) {  // the window's largest value, for people and tests
      const columns = name === "latency" ? [history.p50, history.p95] : [history[name]];
      const values = columns.flat().filter((v) => v !== null);
      $(`chart-${name}`).parentElement.dataset.max = values.length ? Math.max(...values) : "";
    }
    $("view-load").dataset.points = String(history.time.length);
    drawCharts();
  }

  async function pollMetrics() {
    if (metricsBlocked) return;
    try {
      const text = await api("/metrics", { asText: true, quietAuth: true });
      const scrape = { at: performance.now() / 1000, totals: totals(parseMetrics(text)) };
      if (lastScrape) {
        const dt = scrape.at - lastScrape.at;
        if (dt > 0) record(Date.now() / 1000, rates(scrape.totals, lastScrape.totals, dt));
      }
      lastScrape = scrape;
      $("load-error").textContent = "";
    } catch (error) {
      if (error instanceof AuthError) {
        metricsBlocked = true;  // polled again once another key is entered
        $("load-error").textContent = apiKey()
          ? `This key may not read /metrics (401: ${error.message}); with GATEWAY_METRICS_API_KEY set, only that key can.`
          : "This server needs an API key to read /metrics.";
      } else {
        $("load-error").textContent = `Could not read /metrics: ${error.message}`;
      }
    }
  }

  // ---- start ----------------------------------------------------------------------------------------

  function start() {
    setupKeyPanel();
    setupDropZone();
    $("sim-run").addEventListener("click", runSimilarity);
    $("rerank-run").addEventListener("click", runRerank);
    window.addEventListener("hashchange", showView);
    window.addEventListener("resize", () => {
      for (const [name, plot] of Object.entries(plots)) plot.setSize({ width: Math.max(300, $(`chart-${name}`).clientWidth), height: 170 });
    });
    showView();
    refreshModels();
    setInterval(() => { if (!$("view-models").hidden && !modelsBlocked) refreshModels(); }, HEALTH_POLL_MS);
    pollMetrics();
    setInterval(pollMetrics, POLL_MS);
  }

  start();
})();
