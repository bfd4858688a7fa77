"""Per-key quotas: which quota each key gets, the window arithmetic (on a controlled clock), token
charging, the 429 and the OpenAI-format headers (the server-level behaviour is in
compat_tests/test_rate_limits.py)."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import time

import pytest

from gateway.config import ApiKey, Settings
from gateway.errors import RateLimited
from gateway.http.rate_limit import RateLimitGuard
from gateway.serving import request_context
from gateway.serving.rate_limits import (
    SHARED,
    Quota,
    RateLimiter,
    build_rate_limiter,
    openai_duration,
    resolve_quotas,
)
from gateway.serving.service import check_token_total


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture
def clock(monkeypatch):
    """``time.time`` under the test's control (``limits`` reads it through the ``time`` module)."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def test_keys_take_their_own_quota_else_the_defaults_field_by_field():
    quotas = resolve_quotas(settings(
        rate_limit_rpm=100, rate_limit_tpm=5000,
        api_keys=[ApiKey(key="a", name="own", rpm=2, tpm=10), ApiKey(key="b", name="rpm-only", rpm=7),
                  ApiKey(key="c")]))
    assert quotas == {"own": Quota(2, 10), "rpm-only": Quota(7, 5000), "key-3": Quota(100, 5000)}


def test_without_defaults_only_keys_with_a_quota_are_limited():
    quotas = resolve_quotas(settings(api_keys=[ApiKey(key="a", tpm=10), ApiKey(key="b", name="free")]))
    assert quotas == {"key-1": Quota(None, 10)}


def test_without_keys_the_defaults_make_one_shared_quota():
    assert resolve_quotas(settings(rate_limit_rpm=3)) == {SHARED: Quota(3, None)}
    assert resolve_quotas(settings()) == {}


def test_keys_sharing_a_name_share_a_quota_and_must_agree_on_it():
    same = [ApiKey(key="old", name="team", rpm=5), ApiKey(key="new", name="team", rpm=5)]
    assert resolve_quotas(settings(api_keys=same)) == {"team": Quota(5, None)}
    with pytest.raises(ValueError, match="team"):
        resolve_quotas(settings(api_keys=[ApiKey(key="old", name="team", rpm=5),
                                          ApiKey(key="new", name="team", rpm=6)]))


def test_quotas_must_be_positive():
    with pytest.raises(ValueError):
        ApiKey(key="a", rpm=0)
    with pytest.raises(ValueError):
        settings(rate_limit_tpm=-1)


def test_no_quota_builds_no_limiter_and_imports_nothing():
    code = ("import sys; from gateway.http.app import create_app; from gateway.config import Settings;"
            "create_app(Settings(_env_file=None)); print('limits' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert build_rate_limiter(settings()) is None
    assert build_rate_limiter(settings(rate_limit_rpm=1)) is not None


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.0004, "0s"), (0.02, "20ms"), (0.999, "999ms"), (1, "1s"), (8.64, "8.64s"),
    (59.9999, "1m0s"), (60, "1m0s"), (360, "6m0s"), (61.5, "1m1.5s"), (3723, "1h2m3s"), (-1, "0s"),
])
def test_durations_are_written_as_openai_does(seconds, text):
    assert openai_duration(seconds) == text


def test_requests_are_refused_once_the_window_is_spent_and_come_back_after_it(clock):
    limiter = RateLimiter({"k": Quota(rpm=2)})
    for _ in range(2):
        limiter.for_key("k").admit_request()
    clock[0] += 15
    with pytest.raises(RateLimited) as refused:
        limiter.for_key("k").admit_request()
    error = refused.value
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.headers == {"Retry-After": "45", "retry-after-ms": "45000"}
    assert "Limit 2, Used 2, Requested 1" in error.message and "try again in 45s" in error.message
    clock[0] += 45
    limiter.for_key("k").admit_request()
    usage = limiter.usage()["k"]
    assert (usage.requests, usage.rejected_requests) == (3, 1)


def test_headers_report_the_configured_quotas_only(clock):
    limiter = RateLimiter({"k": Quota(rpm=5, tpm=1000), "r": Quota(rpm=3)})
    limits = limiter.for_key("k")
    limits.admit_request()
    limits.charge_tokens(150)
    clock[0] += 0.5
    assert dict(limits.headers()) == {
        b"x-ratelimit-limit-requests": b"5", b"x-ratelimit-remaining-requests": b"4",
        b"x-ratelimit-reset-requests": b"59.5s",
        b"x-ratelimit-limit-tokens": b"1000", b"x-ratelimit-remaining-tokens": b"850",
        b"x-ratelimit-reset-tokens": b"59.5s",
    }
    only_requests = limiter.for_key("r")
    only_requests.admit_request()
    assert {name for name, _ in only_requests.headers()} == {
        b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests", b"x-ratelimit-reset-requests"}
    assert limiter.for_key("unlimited") is None


def test_a_request_over_the_tokens_left_is_refused_whole_and_costs_nothing(clock):
    limiter = RateLimiter({"k": Quota(tpm=100)})
    limits = limiter.for_key("k")
    limits.charge_tokens(60)
    with pytest.raises(RateLimited) as refused:
        limits.charge_tokens(41)
    assert refused.value.type == "tokens" and "Limit 100, Used 60, Requested 41" in refused.value.message
    limits.charge_tokens(40)  # the refused 41 were not spent
    assert dict(limits.headers())[b"x-ratelimit-remaining-tokens"] == b"0"
    usage = limiter.usage()["k"]
    assert (usage.tokens, usage.rejected_tokens) == (100, 1)


def test_a_request_larger_than_the_whole_quota_says_so(clock):
    limits = RateLimiter({"k": Quota(tpm=100)}).for_key("k")
    with pytest.raises(RateLimited, match="larger than the whole limit"):
        limits.charge_tokens(101)


def test_keys_do_not_share_windows(clock):
    limiter = RateLimiter({"a": Quota(rpm=1), "b": Quota(rpm=1)})
    limiter.for_key("a").admit_request()
    limiter.for_key("b").admit_request()
    with pytest.raises(RateLimited):
        limiter.for_key("a").admit_request()


def test_the_token_check_of_every_request_charges_the_key_of_the_request(clock):
    limiter = RateLimiter({"k": Quota(tpm=50)})

    def serve_two_requests() -> None:
        info = request_context.start("r1")
        info.rate_limit = limiter.for_key("k")
        check_token_total(30, settings())
        with pytest.raises(RateLimited):
            check_token_total(30, settings())
        request_context.start("r2")  # a request without a quota: nothing to charge
        check_token_total(10_000, settings())

    contextvars.copy_context().run(serve_two_requests)  # the request records stay out of other tests
    assert limiter.usage()["k"].tokens == 30


class FakeConnection:
    def __init__(self, method: str = "POST") -> None:
        self.scope = {"method": method, "path": "/v1/embeddings"}


def test_the_guard_without_keys_counts_every_post_in_one_shared_quota(clock):
    guard = RateLimitGuard(RateLimiter({SHARED: Quota(rpm=2)}), keyed=False)

    def serve(method: str) -> request_context.RequestInfo:
        info = request_context.start("r")
        guard(FakeConnection(method), None)
        return info

    def serve_requests() -> None:
        assert serve("GET").rate_limit is None  # model lists, docs, probes: never limited
        assert serve("POST").rate_limit.label == SHARED
        serve("POST")
        info = request_context.start("r")
        with pytest.raises(RateLimited):
            guard(FakeConnection(), None)
        assert info.rate_limit is not None  # the refused request still carries its headers

    contextvars.copy_context().run(serve_requests)


def test_the_guard_with_keys_limits_only_keys_that_have_a_quota(clock):
    guard = RateLimitGuard(RateLimiter({"limited": Quota(rpm=1)}), keyed=True)

    def serve_requests() -> None:
        for label, limited in (("limited", True), ("free", False)):
            info = request_context.start("r")
            info.api_key = label
            guard(FakeConnection(), None)
            assert (info.rate_limit is not None) is limited

    contextvars.copy_context().run(serve_requests)
