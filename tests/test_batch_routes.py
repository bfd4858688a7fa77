"""The Files and Batch routes in-process, on a fake engine: upload limits (413, 400), a data directory
that cannot be used (503 on these routes, the rest of the server serving), and a batch answered through
the app's own route."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from gateway.config import Settings
from gateway.http.app import create_app
from tests.test_console_routes import FakeEngine


@pytest.fixture
def make_client(monkeypatch, tmp_path):
    monkeypatch.setattr("gateway.serving.registry.resolve_model_path", lambda config: "unused")
    monkeypatch.setattr("gateway.serving.registry.load_engine", lambda config, path, **options: FakeEngine())

    def make(**settings) -> TestClient:
        settings.setdefault("data_dir", tmp_path / "data")
        return ReadyClient(create_app(Settings(_env_file=None, model="fake", **settings)))

    return make


class ReadyClient(TestClient):
    """A test client whose ``with`` block starts once the model is loaded (it loads in the background)."""

    def __enter__(self) -> ReadyClient:
        super().__enter__()
        for _ in range(500):
            if self.get("/ready").status_code == 200:
                return self
        raise AssertionError("the fake model never became ready")


def upload(client: TestClient, data: bytes):
    return client.post(
        "/v1/files", files={"file": ("in.jsonl", data, "application/jsonl")}, data={"purpose": "batch"}
    )


def line(i: int) -> bytes:
    return (
        json.dumps(
            {
                "custom_id": str(i),
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "fake", "input": f"text {i}"},
            }
        ).encode()
        + b"\n"
    )


def test_uploads_over_the_size_or_line_limit_are_refused(make_client):
    with make_client(batch_max_file_bytes=1000, batch_max_lines=3) as client:
        too_big = upload(client, b"".join(line(i) for i in range(20)))
        assert too_big.status_code == 413 and too_big.json()["error"]["message"]
        too_long = upload(client, b"".join(line(i) for i in range(4)))
        assert too_long.status_code == 400
        assert "4 request lines" in too_long.json()["error"]["message"]
        assert upload(client, b"".join(line(i) for i in range(3))).status_code == 200


def test_an_unusable_data_dir_turns_only_the_bulk_routes_off(make_client, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with make_client(data_dir=tmp_path / "a-file" / "data") as client:
        refused = client.get("/v1/files")
        assert refused.status_code == 503 and "GATEWAY_DATA_DIR" in refused.json()["error"]["message"]
        assert (
            client.post(
                "/v1/batches", json={"input_file_id": "file-x", "endpoint": "/v1/embeddings"}
            ).status_code
            == 503
        )
        assert (
            client.post("/v1/embeddings", json={"model": "fake", "input": "still served"}).status_code == 200
        )


def test_a_batch_is_answered_by_the_route_in_process(make_client):
    with make_client() as client:
        file_id = upload(client, b"".join(line(i) for i in range(5))).json()["id"]
        batch = client.post(
            "/v1/batches",
            json={"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"},
        ).json()
        while batch["status"] not in ("completed", "failed"):
            batch = client.get(f"/v1/batches/{batch['id']}").json()
        assert batch["status"] == "completed" and batch["request_counts"] == {
            "total": 5,
            "completed": 5,
            "failed": 0,
        }
        output = client.get(f"/v1/files/{batch['output_file_id']}/content").content.splitlines()
        online = client.post("/v1/embeddings", json={"model": "fake", "input": "text 0"}).json()
        first = json.loads(output[0])["response"]["body"]
        assert first == {**online, "id": first["id"]}
        assert [b["id"] for b in client.get("/v1/batches").json()["data"]] == [batch["id"]]
