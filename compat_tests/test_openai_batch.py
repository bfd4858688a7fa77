"""The official openai SDK drives the Files and Batch APIs unchanged: ``files.create`` ->
``batches.create`` -> ``batches.retrieve`` -> ``files.content``, against the real server and model; the
batch's answers are byte for byte the online routes' (``/v1/embeddings``, ``/v1/rerank``, ``/v2/embed``)."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import openai
import pytest

from compat_tests.server import run_server

TEXTS = [f"line {i}: the quick brown fox jumps over {i % 7} lazy dogs" for i in range(40)]


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("batch-server")
    with run_server(workdir, env={"GATEWAY_DATA_DIR": str(workdir / "data")}) as running:
        yield running


@pytest.fixture(scope="module")
def client(batch_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=batch_server.openai_base, api_key="unused", max_retries=0)


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def run_batch(client: openai.OpenAI, endpoint: str, bodies: list[dict]):
    """Upload, create, poll until done; the batch and its output lines by custom_id."""
    upload = client.files.create(
        file=(
            "in.jsonl",
            io.BytesIO(
                jsonl(
                    [
                        {"custom_id": f"req-{i}", "method": "POST", "url": endpoint, "body": b}
                        for i, b in enumerate(bodies)
                    ]
                )
            ),
        ),
        purpose="batch",
    )
    assert upload.object == "file" and upload.purpose == "batch" and upload.bytes > 0
    batch = client.batches.create(
        input_file_id=upload.id, endpoint=endpoint, completion_window="24h", metadata={"job": "compat"}
    )
    assert batch.status == "validating" and batch.metadata == {"job": "compat"}
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        batch = client.batches.retrieve(
            batch.id, timeout=60
        )  # polls; each call a round trip, no sleep needed
    assert batch.status == "completed", batch.errors
    content = client.files.content(batch.output_file_id).content
    return batch, {json.loads(line)["custom_id"]: json.loads(line) for line in content.splitlines()}, content


def test_embeddings_batch_through_the_sdk_equals_the_online_route(client, batch_server):
    bodies = [{"model": "all-MiniLM-L6-v2", "input": text} for text in TEXTS]
    batch, answers, content = run_batch(client, "/v1/embeddings", bodies)
    assert batch.request_counts.total == batch.request_counts.completed == len(TEXTS)
    assert batch.request_counts.failed == 0 and batch.error_file_id is None
    assert sorted(answers) == sorted(f"req-{i}" for i in range(len(TEXTS)))
    for i, body in enumerate(bodies):
        line = answers[f"req-{i}"]
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["id"].startswith("batch_req_") and line["response"]["request_id"]
        online = httpx.post(f"{batch_server.url}/v1/embeddings", json=body, timeout=60)
        got = line["response"]["body"]
        assert got == {**online.json(), "id": got["id"]}  # the same JSON, usage included; ids are per request
        # byte for byte: the body inside the output line is the route's own bytes
        assert online.content.replace(online.json()["id"].encode(), got["id"].encode()) in content
    vectors = np.array(
        [answers[f"req-{i}"]["response"]["body"]["data"][0]["embedding"] for i in range(len(TEXTS))]
    )
    sdk = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(vectors, np.array([d.embedding for d in sdk.data]), atol=1e-5)


def test_rerank_and_v2_embed_batches_answer_as_their_routes(client, batch_server):
    rerank = [{"model": "all-MiniLM-L6-v2", "query": "fox", "documents": TEXTS[:5], "top_n": 2}]
    embed = [
        {
            "model": "all-MiniLM-L6-v2",
            "texts": TEXTS[:3],
            "input_type": "search_document",
            "embedding_types": ["float"],
        }
    ]
    for endpoint, bodies in (("/v1/rerank", rerank), ("/v2/embed", embed)):
        _, answers, _ = run_batch(client, endpoint, bodies)
        online = httpx.post(f"{batch_server.url}{endpoint}", json=bodies[0], timeout=60).json()
        got = answers["req-0"]["response"]["body"]
        online.pop("id", None), got.pop("id", None)  # Cohere answers carry a fresh id per request
        assert got == online


def test_invalid_lines_fail_validation_naming_the_line(client):
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}},
        {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "y"}},
        {"custom_id": "b", "method": "POST", "url": "/v1/rerank", "body": {}},
    ]
    data = jsonl(lines) + b"{not json\n"
    upload = client.files.create(file=("bad.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")
    while batch.status not in ("failed", "completed"):
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "failed"
    found = {(e.line, e.code) for e in batch.errors.data}
    assert found == {(2, "duplicate_custom_id"), (3, "mismatched_url"), (4, "invalid_json_line")}
    assert all(f"Line {e.line}" in e.message for e in batch.errors.data)


def test_a_line_the_route_refuses_goes_to_the_error_file(client):
    bodies = [
        {"model": "all-MiniLM-L6-v2", "input": "fine"},
        {"model": "no-such-model", "input": "x"},
        {"model": "all-MiniLM-L6-v2", "input": ""},
    ]
    upload = client.files.create(
        file=(
            "mixed.jsonl",
            io.BytesIO(
                jsonl(
                    [
                        {"custom_id": str(i), "method": "POST", "url": "/v1/embeddings", "body": b}
                        for i, b in enumerate(bodies)
                    ]
                )
            ),
        ),
        purpose="batch",
    )
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")
    while batch.status not in ("failed", "completed"):
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
    errors = [json.loads(line) for line in client.files.content(batch.error_file_id).content.splitlines()]
    assert {(e["custom_id"], e["response"]["status_code"]) for e in errors} == {("1", 404), ("2", 400)}
    assert all(e["response"]["body"]["error"]["message"] for e in errors)


def test_file_routes_list_retrieve_delete_and_limits(client, batch_server):
    upload = client.files.create(file=("x.jsonl", io.BytesIO(b'{"custom_id": "1"}\n')), purpose="batch")
    assert client.files.retrieve(upload.id).filename == "x.jsonl"
    assert upload.id in [f.id for f in client.files.list()]
    assert client.files.content(upload.id).content == b'{"custom_id": "1"}\n'
    assert client.files.delete(upload.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(upload.id)
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(
            input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_gateway_embed_through_the_server_equals_the_online_route(client, batch_server, tmp_path):
    import subprocess
    import sys

    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "embed",
            str(tmp_path / "in.txt"),
            "-o",
            str(tmp_path / "out.npy"),
            "--url",
            batch_server.url,
            "--chunk",
            "16",
            "-q",
        ],
        check=True,
        timeout=300,
    )
    sdk = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(
        np.load(tmp_path / "out.npy"), np.array([d.embedding for d in sdk.data]), atol=1e-6
    )
