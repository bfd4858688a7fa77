"""Batch input files are checked line by line, every problem named with its line (counted from 1), and
output lines embed the route's answer byte for byte (``gateway.protocol.openai_batch``)."""

from __future__ import annotations

import json

from gateway.protocol import openai_batch


def line(custom_id: str = "a", url: str = "/v1/embeddings", method: str = "POST", body=None) -> bytes:
    return json.dumps(
        {"custom_id": custom_id, "method": method, "url": url, "body": body or {"input": "x"}}
    ).encode()


def test_a_valid_file_gives_each_request_in_order_and_skips_blank_lines() -> None:
    data = b"\n".join([line("a"), b"", line("b", body={"input": ["y", "z"]}), b""])
    requests, errors = openai_batch.parse_input(data, "/v1/embeddings", 10)
    assert errors == []
    assert [(cid, json.loads(body)) for cid, body in requests] == [
        ("a", {"input": "x"}),
        ("b", {"input": ["y", "z"]}),
    ]


def test_each_problem_is_named_with_its_line() -> None:
    data = b"\n".join(
        [
            line("a"),
            line("a"),
            line("b", method="GET"),
            line("c", url="/v1/rerank"),
            b"{not json",
            b'{"custom_id": "d", "url": "/v1/embeddings"}',
            line(""),
        ]
    )
    _, errors = openai_batch.parse_input(data, "/v1/embeddings", 10)
    assert [(e.line, e.code) for e in errors] == [
        (2, "duplicate_custom_id"),
        (3, "invalid_method"),
        (4, "mismatched_url"),
        (5, "invalid_json_line"),
        (6, "invalid_request"),
        (7, "invalid_request"),
    ]
    assert all(e.message.startswith(f"Line {e.line}") for e in errors)
    assert "body" in errors[4].message  # the missing field is named


def test_too_many_lines_and_an_empty_file_are_refused() -> None:
    _, errors = openai_batch.parse_input(b"\n".join(line(str(i)) for i in range(4)), "/v1/embeddings", 3)
    assert [(e.code, e.line) for e in errors] == [("too_many_lines", 4)]
    _, errors = openai_batch.parse_input(b"\n\n", "/v1/embeddings", 3)
    assert [e.code for e in errors] == ["empty_file"]


def test_an_output_line_embeds_the_answer_bytes_unchanged() -> None:
    body = b'{"object":"list","data":[{"embedding":[0.1,-2e-05]}],"usage":{"prompt_tokens":3}}'
    out = openai_batch.output_line("batch_req_1", 'id "quoted"', 200, "rid", body)
    assert body in out and out.endswith(b"\n")
    parsed = json.loads(out)
    assert parsed == {
        "id": "batch_req_1",
        "custom_id": 'id "quoted"',
        "error": None,
        "response": {"status_code": 200, "request_id": "rid", "body": json.loads(body)},
    }
