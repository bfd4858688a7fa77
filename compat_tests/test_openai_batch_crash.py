"""A batch survives ``kill -9`` of the server: after a restart on the same data directory it resumes and
completes with every line exactly once (nothing lost, nothing repeated), and its vectors equal the online
route's. The real server, the real model, a real SIGKILL."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter

import httpx
import numpy as np
import openai

from compat_tests.server import run_server

LINES = 4000  # big enough to be mid-way at the kill on any machine this suite runs on
KILL_AFTER = 300  # answers committed before the kill
POLL_S = 0.1


def texts() -> list[str]:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    return [
        f"document {i}: " + " ".join(words[(i * k) % len(words)] for k in range(1, 2 + i % 9))
        for i in range(LINES)
    ]


def wait_for(client: openai.OpenAI, batch_id: str, done) -> openai.types.Batch:
    """Poll the batch until ``done(batch)`` holds (a condition, polled; never a fixed wait)."""
    pause = threading.Event()
    while not done(batch := client.batches.retrieve(batch_id)):
        pause.wait(POLL_S)
    return batch


def test_kill_9_mid_batch_then_restart_answers_every_line_exactly_once(tmp_path, capsys):
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data")}
    corpus = texts()
    data = b"".join(
        json.dumps(
            {
                "custom_id": f"doc-{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "all-MiniLM-L6-v2", "input": text},
            }
        ).encode()
        + b"\n"
        for i, text in enumerate(corpus)
    )
    with run_server(tmp_path, env=env) as first:
        client = openai.OpenAI(base_url=first.openai_base, api_key="unused", max_retries=0)
        upload = client.files.create(file=("corpus.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h"
        )
        before = wait_for(client, batch.id, lambda b: b.request_counts.completed >= KILL_AFTER)
        first.process.kill()  # SIGKILL: no shutdown, no flush
        first.process.wait()
    assert before.status == "in_progress" and before.request_counts.completed < LINES, "not mid-way"

    with run_server(tmp_path, env=env) as second:
        client = openai.OpenAI(base_url=second.openai_base, api_key="unused", max_retries=0)
        resumed = client.batches.retrieve(batch.id)
        final = wait_for(
            client, batch.id, lambda b: b.status not in ("validating", "in_progress", "finalizing")
        )
        assert final.status == "completed", final.errors
        assert (final.request_counts.total, final.request_counts.completed, final.request_counts.failed) == (
            LINES,
            LINES,
            0,
        )
        lines = [json.loads(line) for line in client.files.content(final.output_file_id).content.splitlines()]
        counts = Counter(line["custom_id"] for line in lines)
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        missing = LINES - len(counts)
        assert duplicates == 0 and missing == 0 and len(lines) == LINES
        batch_vectors = {
            line["custom_id"]: line["response"]["body"]["data"][0]["embedding"] for line in lines
        }
        online = []
        for start in range(0, LINES, 500):
            answer = httpx.post(
                f"{second.url}/v1/embeddings",
                timeout=120,
                json={
                    "model": "all-MiniLM-L6-v2",
                    "input": corpus[start : start + 500],
                    "encoding_format": "float",
                },
            )
            online += [d["embedding"] for d in answer.json()["data"]]
    got = np.array([batch_vectors[f"doc-{i}"] for i in range(LINES)], np.float32)
    np.testing.assert_allclose(got, np.array(online, np.float32), atol=1e-5)
    with capsys.disabled():
        print(
            f"\ncrash test: {LINES} lines; {before.request_counts.completed} answered at the last poll "
            f"before kill -9, {resumed.request_counts.completed} committed at restart, "
            f"{LINES - resumed.request_counts.completed} answered after it; duplicates {duplicates}, "
            f"missing {missing}"
        )
