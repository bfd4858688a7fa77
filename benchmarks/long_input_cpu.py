"""Server CPU time of one embedding request holding a single huge input vs a 4 KB one.

A long input is tokenized only through a window of its characters (``gateway.engines.text.tokenization``),
so a 20 MB input should cost the same order of server CPU as a 4 KB one (before the window, a 4 MB input
took 9.1 s). The server runs with ``GATEWAY_MAX_BODY_BYTES`` raised so the 20 MB body is accepted; CPU is
the server process's user + system time (``/proc/<pid>/stat``, Linux) around each request, the median of
``--repeat`` requests. Run: ``python benchmarks/long_input_cpu.py [--mb 20] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from gateway.bench.server import free_port, stop_process, wait_until_ready

WORDS = "the quick brown fox jumps over a lazy dog while internationalization unbelievably happens".split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def text_of(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    words, size = [], 0
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def measure(url: str, pid: int, text: str, repeat: int) -> float:
    """Median server CPU seconds of embedding ``text`` alone (one warm-up request first)."""
    body = {"model": "all-MiniLM-L6-v2", "input": [text]}
    samples = []
    for i in range(repeat + 1):
        before = cpu_seconds(pid)
        response = httpx.post(f"{url}/v1/embeddings", json=body, timeout=600)
        response.raise_for_status()
        if i:
            samples.append(cpu_seconds(pid) - before)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="size of the huge input in MB (default 20)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    huge = text_of(int(args.mb * 1_000_000), seed=1)
    small = text_of(4096, seed=2)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GATEWAY_MAX_BODY_BYTES": str(len(huge) * 2)}
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port)],
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, process, log_path)
            small_s = measure(url, process.pid, small, args.repeat)
            huge_s = measure(url, process.pid, huge, args.repeat)
        finally:
            stop_process(process)
    print(f"server CPU per request: 4 KB input {small_s * 1000:.0f} ms, "
          f"{len(huge) / 1e6:.0f} MB input {huge_s * 1000:.0f} ms (x{huge_s / max(small_s, 1e-9):.1f})")


if __name__ == "__main__":
    main()
