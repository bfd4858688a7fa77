"""``GET /metrics`` through the real server: values move after requests, parsed with prometheus-client."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from compat_tests.production import ADMIN_KEY, QUERY, QUERY_ALIAS, RERANKER, STRICT, bearer, sample, scrape

ROUTE = "/v1/embeddings"


def test_a_request_moves_request_input_token_and_batch_metrics(production_server):
    admin = openai.OpenAI(base_url=production_server.openai_base, api_key=ADMIN_KEY, max_retries=0)
    before = scrape(production_server)
    result = admin.embeddings.create(model=QUERY_ALIAS, input=["one", "two words", "three more words"])
    after = scrape(production_server)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    # labelled with the canonical name, whichever alias the client used
    assert moved("gateway_requests_total", route=ROUTE, method="POST", model=QUERY, status="200") == 1
    assert moved("gateway_request_duration_seconds_count", route=ROUTE, model=QUERY) == 1
    assert moved("gateway_request_duration_seconds_sum", route=ROUTE, model=QUERY) > 0
    assert moved("gateway_inputs_total", route=ROUTE, model=QUERY) == 3
    assert moved("gateway_tokens_total", route=ROUTE, model=QUERY) == result.usage.total_tokens
    assert moved("gateway_batch_size_sum", model=QUERY) == 3
    assert moved("gateway_batch_size_count", model=QUERY) >= 1
    assert moved("gateway_batch_padded_tokens_sum", model=QUERY) >= result.usage.total_tokens
    assert moved("gateway_batch_duration_seconds_count", model=QUERY) >= 1


def test_rejected_requests_are_counted_by_status(production_server):
    before = scrape(production_server)
    httpx.post(f"{production_server.url}{ROUTE}", json={"model": QUERY, "input": "x"})  # no key
    httpx.get(f"{production_server.url}/no/such/route", headers=bearer(ADMIN_KEY))
    after = scrape(production_server)
    unauthorized = {"route": ROUTE, "method": "POST", "model": "", "status": "401"}
    assert sample(after, "gateway_requests_total", **unauthorized) == \
        sample(before, "gateway_requests_total", **unauthorized) + 1
    unmatched = {"route": "(unmatched)", "method": "GET", "model": "", "status": "404"}  # never the raw path
    assert sample(after, "gateway_requests_total", **unmatched) == \
        sample(before, "gateway_requests_total", **unmatched) + 1


def test_model_state_and_load_time_per_model(production_server):
    metrics = scrape(production_server)
    for model in (STRICT, QUERY, RERANKER):
        assert sample(metrics, "gateway_model_ready", model=model) == 1
        assert sample(metrics, "gateway_model_load_seconds", model=model) > 0
        assert sample(metrics, "gateway_batch_size_count", model=model) >= 1  # the warm-up pass
        assert (("gateway_queue_inputs", frozenset({("model", model)})) in metrics)
    assert sample(metrics, "process_resident_memory_bytes") > 0


def test_queue_depth_and_in_progress_rise_under_load(production_server):
    admin = openai.OpenAI(base_url=production_server.openai_base, api_key=ADMIN_KEY, max_retries=0,
                          timeout=600)
    texts = [f"sentence number {i} about queues, batches and metrics" for i in range(2048)]
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(admin.embeddings.create, model=QUERY, input=texts)
        peak_queue, peak_in_progress = 0.0, 0.0
        while not big.done():
            metrics = scrape(production_server)
            peak_queue = max(peak_queue, sample(metrics, "gateway_queue_inputs", model=QUERY))
            peak_in_progress = max(peak_in_progress, sample(metrics, "gateway_requests_in_progress"))
            time.sleep(0.02)
        assert len(big.result().data) == 2048
    assert peak_queue > 0
    assert peak_in_progress >= 2  # the big request and the scrape itself
    assert sample(scrape(production_server), "gateway_queue_inputs", model=QUERY) == 0
