"""``gil_switch_interval_ms``: ``gateway serve`` sets Python's switch interval before the server runs, so the
event loop waits at most that long for the GIL while other threads run Python (docs/limits.md)."""

from __future__ import annotations

import signal
import sys

import pytest

from gateway import cli
from gateway.config import Settings
from gateway.http.shutdown import GatewayServer


def test_the_default_is_one_millisecond() -> None:
    assert Settings().gil_switch_interval_ms == 1.0


@pytest.mark.parametrize("value", ["0", "-1", "101"])
def test_a_switch_interval_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GATEWAY_GIL_SWITCH_INTERVAL_MS", value)
    with pytest.raises(ValueError, match="gil_switch_interval_ms"):
        Settings()


def test_serve_sets_the_switch_interval_before_the_server_runs(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path) -> None:
    seen: dict[str, float] = {}

    def run(self: GatewayServer) -> None:  # instead of uvicorn: note what the server would run under
        seen["interval"] = sys.getswitchinterval()
        self.started = True

    monkeypatch.setattr(GatewayServer, "run", run)
    monkeypatch.setattr(cli, "exit_now", lambda code: seen.setdefault("code", code))
    monkeypatch.setattr("gateway.http.request_log.configure_logging", lambda settings: None)
    monkeypatch.setenv("GATEWAY_GIL_SWITCH_INTERVAL_MS", "2.5")
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    before, sigterm = sys.getswitchinterval(), signal.getsignal(signal.SIGTERM)
    try:
        cli.main(["serve", "--port", "0"])
    finally:
        sys.setswitchinterval(before)
        signal.signal(signal.SIGTERM, sigterm)
    assert seen == {"interval": pytest.approx(0.0025), "code": 0}
