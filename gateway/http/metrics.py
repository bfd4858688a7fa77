"""Prometheus metrics of one app, served at ``GET /metrics`` (text exposition format).

Each app owns a ``CollectorRegistry`` (not prometheus-client's global one), so several apps in one
process never clash. Request metrics are observed by ``RequestObserver``; batch metrics by the runners'
``on_batch`` callbacks (on their engine threads: prometheus-client metrics are thread-safe); queue
depth and model state are read from the registry at scrape time.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.serving.rate_limits import RateLimiter
from gateway.serving.registry import Registry
from gateway.serving.request_context import RequestInfo

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
BATCH_TOKEN_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144)


class ModelStateCollector(Collector):
    """Per-model gauges read at scrape time: queue depth, readiness, load time; and the count of outputs
    that held NaN or infinity (their requests failed with a 500)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        def gauge(name: str, documentation: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, labels=["model"])

        queued = gauge("gateway_queue_inputs", "Inputs waiting for the model's engine")
        queued_tokens = gauge("gateway_queue_tokens", "Tokens waiting for the model's engine")
        ready = gauge("gateway_model_ready", "1 when loaded, warmed up and not failing, else 0")
        load = gauge("gateway_model_load_seconds", "Time to load and warm up the model")
        non_finite = CounterMetricFamily("gateway_non_finite_outputs", "Vectors or scores the model returned "
                                         "with NaN or infinity (never sent: their requests failed with a "
                                         "500)", labels=["model"])
        for served in self.registry.models:
            runner = served.runner
            queued.add_metric([served.name], runner.queued_items if runner else 0)
            queued_tokens.add_metric([served.name], runner.queued_tokens if runner else 0)
            ok = served.state == "ready" and runner is not None and not runner.stats.failing
            ready.add_metric([served.name], 1.0 if ok else 0.0)
            if served.load_ms is not None:
                load.add_metric([served.name], served.load_ms / 1000)
            non_finite.add_metric([served.name], runner.stats.non_finite if runner else 0)
        yield from (queued, queued_tokens, ready, load, non_finite)


class LifecycleCollector(Collector):
    """The models' life cycle read at scrape time (``gateway.serving.lifecycle``): loads, failed loads,
    unloads by reason (``memory_budget`` is an eviction; ``keep_alive``, ``admin``, ``reload``), evictions,
    the seconds of each load (download, load and warm-up; the last 100 per model) and the weight bytes
    resident per model."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        loads = CounterMetricFamily("gateway_model_loads", "Loads of the model (start-up, on demand, admin)",
                                    labels=["model"])
        failed = CounterMetricFamily("gateway_model_load_failures", "Loads (or downloads) that failed",
                                     labels=["model"])
        unloads = CounterMetricFamily("gateway_model_unloads", "Unloads of the model by reason: keep_alive, "
                                      "memory_budget (an eviction), admin, reload",
                                      labels=["model", "reason"])
        evictions = CounterMetricFamily("gateway_model_evictions", "Unloads to make room under "
                                        "model_memory_budget", labels=["model", "reason"])
        seconds = GaugeMetricFamily("gateway_model_last_load_seconds", "Seconds the last load took "
                                    "(download, load and warm-up)", labels=["model"])
        resident = GaugeMetricFamily("gateway_model_resident_bytes", "Weight bytes of the model while loaded "
                                     "(safetensors headers), 0 when unloaded", labels=["model"])
        events = self.registry.events
        for (event, model, reason), count in sorted(events.counts.items()):
            if event == "load":
                loads.add_metric([model], count)
            elif event == "load_failed":
                failed.add_metric([model], count)
            elif event == "unload":
                unloads.add_metric([model, reason], count)
                if reason == "memory_budget":
                    evictions.add_metric([model, "lru_idle"], count)
        for model, times in events.load_seconds.items():
            seconds.add_metric([model], times[-1])
        for served in self.registry.models:
            loaded = served.state in ("ready", "unloading")
            resident.add_metric([served.name], (served.weights_bytes or 0) if loaded else 0)
        yield from (loads, failed, unloads, evictions, seconds, resident)


class CacheCollector(Collector):
    """Per-model embedding cache counts read at scrape time (``embedding_cache.CacheStats``)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hits = CounterMetricFamily("gateway_cache_hits", "Inputs served from the embedding cache",
                                   labels=["model"])
        misses = CounterMetricFamily("gateway_cache_misses", "Inputs the embedding cache did not hold",
                                     labels=["model"])
        evictions = CounterMetricFamily("gateway_cache_evictions", "Vectors the in-memory cache dropped to "
                                        "stay within cache_max_bytes", labels=["model"])
        held = GaugeMetricFamily("gateway_cache_bytes", "Bytes the in-memory embedding cache holds",
                                 labels=["model"])
        for served in self.registry.models:
            if served.cache is None:
                continue
            stats = served.cache.stats
            hits.add_metric([served.name], stats.hits)
            misses.add_metric([served.name], stats.misses)
            evictions.add_metric([served.name], stats.evictions)
            held.add_metric([served.name], stats.bytes)
        yield from (hits, misses, evictions, held)


class RateLimitCollector(Collector):
    """Per-key quotas and usage read at scrape time, labelled by the key's name (never its secret)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        key = ["key"]
        limit_rpm = GaugeMetricFamily("gateway_rate_limit_rpm", "Configured requests per minute", labels=key)
        limit_tpm = GaugeMetricFamily("gateway_rate_limit_tpm", "Configured model tokens per minute",
                                      labels=key)
        requests = CounterMetricFamily("gateway_rate_limited_requests", "Requests admitted under a quota",
                                       labels=key)
        tokens = CounterMetricFamily("gateway_rate_limited_tokens", "Model tokens charged to a quota",
                                     labels=key)
        rejected = CounterMetricFamily("gateway_rate_limit_rejections", "Requests refused with 429 by a "
                                       "quota, by the quota spent (requests | tokens)",
                                       labels=["key", "limit"])
        for label, usage in self.limiter.usage().items():
            quota = self.limiter.quotas[label]
            if quota.rpm is not None:
                limit_rpm.add_metric([label], quota.rpm)
            if quota.tpm is not None:
                limit_tpm.add_metric([label], quota.tpm)
            requests.add_metric([label], usage.requests)
            tokens.add_metric([label], usage.tokens)
            rejected.add_metric([label, "requests"], usage.rejected_requests)
            rejected.add_metric([label, "tokens"], usage.rejected_tokens)
        yield from (limit_rpm, limit_tpm, requests, tokens, rejected)


class Metrics:
    """The metrics of one app and the hooks that feed them (``limiter``: per-key quotas, if any)."""

    def __init__(self, registry: Registry, limiter: RateLimiter | None = None) -> None:
        self.collectors = CollectorRegistry()
        by_request, by_model = ["route", "model"], ["model"]
        self.requests = self._counter("gateway_requests", "HTTP requests by route, method, model and status",
                                      ["route", "method", "model", "status"])
        self.in_progress = Gauge("gateway_requests_in_progress", "HTTP requests being served",
                                 registry=self.collectors)
        self.latency = self._histogram("gateway_request_duration_seconds", "Time to serve a request",
                                       by_request, LATENCY_BUCKETS_S)
        self.inputs = self._counter("gateway_inputs", "Sequences sent to models (texts or query-document "
                                    "pairs)", by_request)
        self.tokens = self._counter("gateway_tokens", "Model tokens sent to models", by_request)
        self.batch_size = self._histogram("gateway_batch_size", "Inputs per forward pass", by_model,
                                          BATCH_SIZE_BUCKETS)
        self.batch_tokens = self._histogram("gateway_batch_padded_tokens", "Padded tokens per forward pass "
                                            "(longest input x count)", by_model, BATCH_TOKEN_BUCKETS)
        self.batch_latency = self._histogram("gateway_batch_duration_seconds", "Time of one forward pass",
                                             by_model, LATENCY_BUCKETS_S)
        self._children: dict[tuple[str, str, str, int], tuple] = {}  # label set -> its metrics, see below
        self.collectors.register(ModelStateCollector(registry))
        if limiter is not None:
            self.collectors.register(RateLimitCollector(limiter))
        self.collectors.register(CacheCollector(registry))
        self.collectors.register(LifecycleCollector(registry))
        ProcessCollector(registry=self.collectors)  # memory, CPU, open files of this process

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.collectors)

    def _histogram(self, name: str, documentation: str, labels: list[str], buckets: tuple) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.collectors)

    def observe_request(self, info: RequestInfo, route: str, method: str, status: int,
                        seconds: float) -> None:
        """Count one finished request (``route`` is the matched path template, never the raw path)."""
        model = info.model or ""
        key = (route, method, model, status)
        children = self._children.get(key)
        if children is None:  # labels() validates and locks on every call: once per label set is enough
            children = self._children[key] = (
                self.requests.labels(route, method, model, str(status)), self.latency.labels(route, model))
        requests, latency = children[:2]
        requests.inc()
        latency.observe(seconds)
        if info.inputs:
            # input and token series exist only for routes that sent work to a model (not /ready, /health)
            if len(children) == 2:
                children = self._children[key] = (
                    *children, self.inputs.labels(route, model), self.tokens.labels(route, model))
            children[2].inc(info.inputs)
            children[3].inc(info.tokens or 0)

    def batch_observer(self, model: str) -> Callable[[int, int, float], None]:
        """A runner ``on_batch`` callback ``(size, padded_tokens, ms)`` for ``model``."""
        size = self.batch_size.labels(model)
        tokens = self.batch_tokens.labels(model)
        latency = self.batch_latency.labels(model)

        def on_batch(count: int, padded: int, ms: float) -> None:
            size.observe(count)
            tokens.observe(padded)
            latency.observe(ms / 1000)

        return on_batch

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.collectors)
