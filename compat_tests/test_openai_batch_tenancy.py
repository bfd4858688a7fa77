"""With API keys configured, a key sees, reads and cancels only its own files and batches (another key's
ids answer 404, as missing ones); batch tokens do not count against the key's ``tpm`` quota by default
(``batch_tpm_share = 0``), yet every line still runs under its owner's key."""

from __future__ import annotations

import io
import json
import threading

import httpx
import openai
import pytest

from compat_tests.server import run_server

TPM = 200


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("batch-keys")
    env = {
        "GATEWAY_DATA_DIR": str(workdir / "data"),
        "GATEWAY_API_KEYS": "key-alice,key-bob",
        "GATEWAY_RATE_LIMIT_TPM": str(TPM),
    }
    with run_server(workdir, env=env) as running:
        yield running


def client(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base, api_key=key, max_retries=0)


def test_a_key_sees_and_cancels_only_its_own_files_and_batches(keyed_server):
    alice, bob = client(keyed_server, "key-alice"), client(keyed_server, "key-bob")
    texts = [f"sentence number {i} about tenancy and quotas in a shared server" for i in range(40)]
    data = b"".join(
        json.dumps(
            {
                "custom_id": str(i),
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "all-MiniLM-L6-v2", "input": t},
            }
        ).encode()
        + b"\n"
        for i, t in enumerate(texts)
    )
    upload = alice.files.create(file=("a.jsonl", io.BytesIO(data)), purpose="batch")
    assert upload.id not in [f.id for f in bob.files.list()]
    for call in (
        lambda: bob.files.retrieve(upload.id),
        lambda: bob.files.content(upload.id),
        lambda: bob.files.delete(upload.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError, match="No such File"):
        bob.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")

    batch = alice.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")
    assert batch.id not in [b.id for b in bob.batches.list()]
    for call in (lambda: bob.batches.retrieve(batch.id), lambda: bob.batches.cancel(batch.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    pause = threading.Event()
    while (batch := alice.batches.retrieve(batch.id)).status not in ("completed", "failed", "cancelled"):
        pause.wait(0.1)
    assert batch.status == "completed" and batch.request_counts.completed == len(texts)
    lines = [json.loads(line) for line in alice.files.content(batch.output_file_id).content.splitlines()]
    tokens = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in lines)
    assert tokens > TPM  # the batch spent more than the key's per-minute quota ...
    with pytest.raises(openai.NotFoundError):
        bob.files.content(batch.output_file_id)
    # ... yet the key's online quota is whole: batch tokens count at batch_tpm_share = 0
    online = httpx.post(
        f"{keyed_server.url}/v1/embeddings",
        json={"model": "all-MiniLM-L6-v2", "input": "hi"},
        headers={"Authorization": "Bearer key-alice"},
        timeout=60,
    )
    assert online.status_code == 200
    used = online.json()["usage"]["prompt_tokens"]
    assert int(online.headers["x-ratelimit-remaining-tokens"]) == TPM - used


def test_without_a_key_the_batch_routes_answer_401(keyed_server):
    assert httpx.get(f"{keyed_server.url}/v1/batches", timeout=30).status_code == 401
    assert httpx.get(f"{keyed_server.url}/v1/files", timeout=30).status_code == 401
