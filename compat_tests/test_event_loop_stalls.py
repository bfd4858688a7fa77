"""The event loop never stalls (issue 22): ``/health`` answers within 50 ms at p99 while the real server
(default MiniLM) processes maximum-size requests: an 8 MiB body, 2,048 inputs (answered, in OpenAI floats
and TEI's float lists), and 300,000 cl100k token ids (one list, and 2,048 lists).

The issue asks for this latency bound, so it is a timed assertion, made robust for a loaded 2-core box:
only ``/health`` is timed (never the big requests); the big requests are sent from a process of their own
(their 8 MiB bodies never hold the probing process's GIL); at least ``MIN_SAMPLES`` probes are taken,
back to back, while the load runs; a probe during which a process that only sleeps was also kept waiting
(``compat_tests/heartbeat.py``: the machine, not the server) is left out. The p99 is the one a probe sent
at a random moment would see (``p99_at_random_moments``): a probe loop that only counts its own round
trips sees one slow sample per stall, and passed with 1.4 s stalls on the old code (which decoded ids,
scanned bodies, classified inputs and loaded tiktoken on the event loop); evenly slow round trips on a
busy machine do not count as stalls.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import numpy as np

from compat_tests.server import run_server
from gateway.config import Settings
from gateway.protocol.token_ids import cl100k

P99_LIMIT_MS = 50
MIN_SAMPLES = 300
ROUNDS = 1  # each big request is sent this many times, one after the other, on its own connection
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho".split()


def _bodies(folder: Path) -> list[Path]:
    """The maximum-size request bodies, written as ``<path with ~>.<label>.json`` files."""
    settings = Settings()
    rng = random.Random(22)
    inputs, token_budget = settings.max_inputs_per_request, settings.max_tokens_per_request

    # 8 MiB: the most inputs of ~4 KB each, with brackets inside strings so the depth scan runs in full
    size = (settings.max_body_bytes - 4096) // inputs
    long_text = " ".join(rng.choice(WORDS) + ("[x]" if rng.random() < 0.1 else "") for _ in range(size))
    body_8mib = msgspec.json.encode({"model": "all-MiniLM-L6-v2", "input": [long_text[:size - 4]] * inputs})
    assert settings.max_body_bytes - 8192 < len(body_8mib) <= settings.max_body_bytes
    # 2,048 distinct short texts: answered with 2,048 x 384 floats
    texts = [f"{i} " + " ".join(rng.choice(WORDS) for _ in range(8)) for i in range(inputs)]
    # 300,000 cl100k ids: one list, and the same spread over 2,048 lists
    ids = cl100k().encode(" ".join(rng.choice(WORDS) for _ in range(token_budget)))[:token_budget]
    assert len(ids) == token_budget
    per_list = -(-token_budget // inputs)
    id_lists = [ids[i:i + per_list] for i in range(0, len(ids), per_list)]
    bodies = {
        "v1~embeddings.8mib": body_8mib,
        "v1~embeddings.floats": msgspec.json.encode({"model": "all-MiniLM-L6-v2", "input": texts,
                                                     "encoding_format": "float"}),
        "embed.tei": msgspec.json.encode({"inputs": texts[::-1]}),
        "v1~embeddings.ids": msgspec.json.encode({"model": "all-MiniLM-L6-v2", "input": ids}),
        "v1~embeddings.idlists": msgspec.json.encode({"model": "all-MiniLM-L6-v2", "input": id_lists}),
    }
    paths = []
    for name, body in bodies.items():
        paths.append(folder / f"{name}.json")
        paths[-1].write_bytes(body)
    return paths


def test_health_answers_within_50ms_p99_while_maximum_size_requests_are_processed(tmp_path):
    files = _bodies(tmp_path)
    root = Path(__file__).resolve().parents[1]
    with run_server(tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as probe:
        assert probe.get("/health").status_code == 200  # connected and warm before timing
        heartbeat = subprocess.Popen([sys.executable, "-m", "compat_tests.heartbeat"], cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert heartbeat.stdout.readline().strip() == "started"
        load = subprocess.Popen(
            [sys.executable, "-m", "compat_tests.big_requests", server.url, str(ROUNDS), *map(str, files)],
            cwd=root, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert load.stdout.readline().strip() == "started"
            probes = []  # (sent, answered) in time.monotonic() seconds
            while load.poll() is None:
                start = time.monotonic()
                response = probe.get("/health")
                probes.append((start, time.monotonic()))
                assert response.status_code == 200
            statuses = json.loads(load.stdout.read())
            heartbeat.stdin.close()
            machine_stalls = json.loads(heartbeat.stdout.read())
        finally:
            load.kill()
            heartbeat.kill()
            load.wait()
            heartbeat.wait()

    # every big request was processed and answered: 200, or the 400 of a limit checked after decoding
    assert statuses["v1~embeddings.floats.json"] == [200] * ROUNDS, statuses
    assert statuses["embed.tei.json"] == [200] * ROUNDS, statuses
    assert all(code in (200, 400) for codes in statuses.values() for code in codes), statuses
    # a probe during which the machine also kept a sleeping process waiting says nothing about the server
    latencies_ms = [(end - start) * 1000 for start, end in probes
                    if not any(begin < end and start < finish for begin, finish in machine_stalls)]
    print(f"{len(probes) - len(latencies_ms)} of {len(probes)} probes overlapped {len(machine_stalls)} "
          f"machine-wide stalls (up to {max((b - a for a, b in machine_stalls), default=0) * 1000:.0f} ms)")
    assert len(latencies_ms) >= MIN_SAMPLES, f"only {len(latencies_ms)} /health probes during the load"
    p99 = p99_at_random_moments(latencies_ms)
    p50, worst = float(np.median(latencies_ms)), max(latencies_ms)
    print(f"/health during the load: {len(latencies_ms)} probes, round trip p50 {p50:.1f} ms, worst "
          f"{worst:.0f} ms; p99 at random moments {p99:.1f} ms")  # shown with -s
    slowest = [round(x) for x in sorted(latencies_ms)[-5:]]
    assert p99 < P99_LIMIT_MS, (f"/health p99 {p99:.1f} ms at random moments over {len(latencies_ms)} "
                                f"probes (slowest round trips {slowest} ms)")


def p99_at_random_moments(round_trips_ms: list[float]) -> float:
    """The 99th percentile latency of a probe sent at a random moment of back-to-back ``round_trips_ms``.

    Such a probe takes a typical round trip (the median), plus, when it is sent during a slower one of
    ``L`` ms, what is left of that one's excess ``L - median`` (uniform on 0..excess, time-weighted: a 1 s
    stall covers 1 s of the run, not one sample of thousands).
    """
    trips = np.asarray(round_trips_ms)
    typical = float(np.median(trips))
    excess = np.clip(trips - typical, 0, None)

    def share_over(wait: float) -> float:  # of the run's time, during which a probe would wait longer
        return float(np.clip(excess - wait, 0, None).sum() / trips.sum())

    low, high = 0.0, float(excess.max())  # bisect: the extra wait that 1% of the run's time exceeds
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if share_over(mid) > 0.01 else (low, mid)
    return typical + high
