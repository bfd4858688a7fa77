"""Prometheus metrics of one app, served at ``GET /metrics`` (text exposition format).

Each app owns a ``CollectorRegistry`` (not prometheus-client's global one), so several apps in one
process never clash. Request metrics are observed by ``RequestObserver``; batch metrics by the runners'
``on_batch`` callbacks (on their engine threads: prometheus-client metrics are thread-safe); queue
depth and model state are read from the registry at scrape time.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.registry import Registry
from gateway.request_context import RequestInfo

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
BATCH_TOKEN_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144)


class ModelStateCollector(Collector):
    """Per-model gauges read at scrape time: queue depth, readiness, load time."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queued = GaugeMetricFamily("gateway_queue_inputs", "Inputs waiting for the model's engine", labels=["model"])
        queued_tokens = GaugeMetricFamily("gateway_queue_tokens", "Tokens waiting for the model's engine",
                                          labels=["model"])
        ready = GaugeMetricFamily("gateway_model_ready", "1 when loaded, warmed up and not failing", labels=["model"])
        load = GaugeMetricFamily("gateway_model_load_seconds", "Time to load and warm up the model", labels=["model"])
        for served in self.registry.models:
            runner = served.runner
            queued.add_metric([served.name], runner.queued_items if runner else 0)
            queued_tokens.add_metric([served.name], runner.queued_tokens if runner else 0)
            ok = served.state == "ready" and runner is not None and not runner.stats.failing
            ready.add_metric([served.name], 1.0 if ok else 0.0)
            if served.load_ms is not None:
                load.add_metric([served.name], served.load_ms / 1000)
        yield from (queued, queued_tokens, ready, load)


class Metrics:
    """The metrics of one app and the hooks that feed them."""

    def __init__(self, registry: Registry) -> None:
        self.collectors = CollectorRegistry()
        on = {"registry": self.collectors}
        self.requests = Counter("gateway_requests", "HTTP requests by route, method, model and status",
                                ["route", "method", "model", "status"], **on)
        self.in_progress = Gauge("gateway_requests_in_progress", "HTTP requests being served", **on)
        self.latency = Histogram("gateway_request_duration_seconds", "Time to serve a request, until its last byte is sent",
                                 ["route", "model"], buckets=LATENCY_BUCKETS_S, **on)
        self.inputs = Counter("gateway_inputs", "Sequences sent to models (texts or query-document pairs)",
                              ["route", "model"], **on)
        self.tokens = Counter("gateway_tokens", "Model tokens sent to models", ["route", "model"], **on)
        self.batch_size = Histogram("gateway_batch_size", "Inputs per forward pass", ["model"],
                                    buckets=BATCH_SIZE_BUCKETS, **on)
        self.batch_tokens = Histogram("gateway_batch_padded_tokens", "Padded tokens per forward pass (longest x "
                                      "count)", ["model"], buckets=BATCH_TOKEN_BUCKETS, **on)
        self.batch_latency = Histogram("gateway_batch_duration_seconds", "Time of one forward pass", ["model"],
                                       buckets=LATENCY_BUCKETS_S, **on)
        self.collectors.register(ModelStateCollector(registry))
        ProcessCollector(registry=self.collectors)  # memory, CPU, open files of this process

    def observe_request(self, info: RequestInfo, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request (``route`` is the matched path template, never the raw path)."""
        model = info.model or ""
        self.requests.labels(route, method, model, str(status)).inc()
        self.latency.labels(route, model).observe(seconds)
        if info.inputs:
            self.inputs.labels(route, model).inc(info.inputs)
            self.tokens.labels(route, model).inc(info.tokens or 0)

    def batch_observer(self, model: str) -> Callable[[int, int, float], None]:
        """A runner ``on_batch`` callback ``(size, padded_tokens, ms)`` for ``model``."""
        size, tokens, latency = (m.labels(model) for m in (self.batch_size, self.batch_tokens, self.batch_latency))

        def on_batch(count: int, padded: int, ms: float) -> None:
            size.observe(count)
            tokens.observe(padded)
            latency.observe(ms / 1000)

        return on_batch

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.collectors)
