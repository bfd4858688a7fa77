"""OpenAI's Files and Batch APIs: the wire shapes, and the parsing and checking of a batch input file.

Specs: https://platform.openai.com/docs/api-reference/files and
https://platform.openai.com/docs/api-reference/batch (shapes as the openai-python SDK's ``FileObject``,
``Batch``, ``BatchRequestCounts`` and ``Errors`` types read them). An input file holds one request per
line, ``{"custom_id", "method": "POST", "url", "body"}``; the output file one answer per line,
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``, whose ``body`` is
the JSON the online route returned, byte for byte. Pure: no serving or engine imports.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
FilePurpose = Literal["batch", "batch_output"]
COMPLETION_WINDOWS = ("24h",)
MAX_ERRORS = 100  # errors listed for an invalid input file (OpenAI lists several, not thousands)
METADATA_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512  # OpenAI's metadata limits


class FileObject(msgspec.Struct):
    """OpenAI's ``FileObject``."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object: Literal["file"] = "file"
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileList(msgspec.Struct):
    """``GET /v1/files``: a page of files, newest first."""

    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
    object: Literal["list"] = "list"


class FileDeleted(msgspec.Struct):
    """``DELETE /v1/files/{id}``."""

    id: str
    deleted: bool = True
    object: Literal["file"] = "file"


class BatchError(msgspec.Struct):
    """One problem of an invalid input file; ``line`` counts from 1."""

    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(msgspec.Struct):
    """``Batch.errors``."""

    data: list[BatchError]
    object: Literal["list"] = "list"


class BatchRequestCounts(msgspec.Struct):
    """``Batch.request_counts``: lines in all, answered with a 2xx, and failed."""

    total: int = 0
    completed: int = 0
    failed: int = 0


class Batch(msgspec.Struct):
    """OpenAI's ``Batch`` object (times in Unix seconds)."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: int
    request_counts: BatchRequestCounts
    object: Literal["batch"] = "batch"
    errors: BatchErrors | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    metadata: dict[str, str] | None = None


class BatchList(msgspec.Struct):
    """``GET /v1/batches``: a page of batches, newest first."""

    data: list[Batch]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
    object: Literal["list"] = "list"


class CreateBatchRequest(msgspec.Struct, forbid_unknown_fields=False):
    """``POST /v1/batches``."""

    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None


class InputLine(msgspec.Struct):
    """One line of an input file (``method`` must be POST, ``url`` the batch's endpoint)."""

    custom_id: str
    url: str
    body: dict[str, Any]
    method: str = "POST"


def check_create(request: CreateBatchRequest, endpoints: tuple[str, ...]) -> tuple[str, str] | None:
    """A problem with a create request as ``(param, message)``, or None when it is fine."""
    if request.endpoint not in endpoints:
        return "endpoint", (f"Unsupported endpoint {request.endpoint!r}: use one of {', '.join(endpoints)}.")
    if request.completion_window not in COMPLETION_WINDOWS:
        return "completion_window", (
            f"Invalid completion_window {request.completion_window!r}: only '24h' is supported."
        )
    metadata = request.metadata or {}
    if len(metadata) > METADATA_KEYS or any(
        len(k) > METADATA_KEY_CHARS or len(v) > METADATA_VALUE_CHARS for k, v in metadata.items()
    ):
        return "metadata", (
            f"metadata holds at most {METADATA_KEYS} pairs, keys of at most {METADATA_KEY_CHARS} "
            f"characters and values of at most {METADATA_VALUE_CHARS}."
        )
    return None


def parse_input(
    data: bytes, endpoint: str, max_lines: int
) -> tuple[list[tuple[str, bytes]], list[BatchError]]:
    """Split an input file into ``(custom_id, body JSON)`` per request line, checking every line.

    Blank lines are skipped (they are not requests); line numbers in errors count every line from 1.

    Returns:
        The requests in file order, and the problems found (at most ``MAX_ERRORS``; any problem fails the
        whole batch, as OpenAI does).
    """
    requests: list[tuple[str, bytes]] = []
    errors: list[BatchError] = []
    seen: dict[str, int] = {}
    decoder = msgspec.json.Decoder(InputLine)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(errors) >= MAX_ERRORS:
            break
        if not raw.strip():
            continue
        error = None
        try:
            line = decoder.decode(raw)
        except msgspec.ValidationError as exc:
            error = BatchError("invalid_request", f"Line {number}: {exc}", param=None, line=number)
        except msgspec.DecodeError as exc:
            error = BatchError("invalid_json_line", f"Line {number} is not valid JSON ({exc}).", line=number)
        else:
            error = _check_line(line, number, endpoint, seen)
            if error is None:
                seen[line.custom_id] = number
                requests.append((line.custom_id, msgspec.json.encode(line.body)))
        if error is not None:
            errors.append(error)
    if not requests and not errors:
        errors.append(BatchError("empty_file", "The input file holds no request lines."))
    if len(requests) > max_lines:
        errors.append(
            BatchError(
                "too_many_lines",
                f"The input file holds {len(requests)} requests; a batch takes at most {max_lines}.",
                line=max_lines + 1,
            )
        )
    return requests, errors


def _check_line(line: InputLine, number: int, endpoint: str, seen: dict[str, int]) -> BatchError | None:
    if line.method.upper() != "POST":
        return BatchError(
            "invalid_method",
            f"Line {number}: method must be POST, got {line.method!r}.",
            param="method",
            line=number,
        )
    if line.url != endpoint:
        return BatchError(
            "mismatched_url",
            f"Line {number}: url {line.url!r} differs from the batch's endpoint {endpoint!r}.",
            param="url",
            line=number,
        )
    if not line.custom_id:
        return BatchError(
            "invalid_request", f"Line {number}: custom_id must not be empty.", param="custom_id", line=number
        )
    if line.custom_id in seen:
        return BatchError(
            "duplicate_custom_id",
            f"Line {number}: custom_id {line.custom_id!r} already appears on line {seen[line.custom_id]}.",
            param="custom_id",
            line=number,
        )
    return None


def output_line(line_id: str, custom_id: str, status_code: int, request_id: str, body: bytes) -> bytes:
    """One line of an output or error file: ``body`` (the route's JSON answer) is embedded as it is."""
    head = msgspec.json.encode({"id": line_id, "custom_id": custom_id})[:-1]
    meta = msgspec.json.encode({"status_code": status_code, "request_id": request_id})[:-1]
    return head + b',"response":' + meta + b',"body":' + body + b'},"error":null}\n'


def failed_line(line_id: str, custom_id: str, code: str, message: str) -> bytes:
    """A line of the error file for a request that got no answer (e.g. the batch expired or was cancelled)."""
    return (
        msgspec.json.encode(
            {
                "id": line_id,
                "custom_id": custom_id,
                "response": None,
                "error": {"code": code, "message": message},
            }
        )
        + b"\n"
    )


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
