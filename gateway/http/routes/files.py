"""OpenAI's Files API for batch input: ``POST /v1/files``, ``GET /v1/files``, ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``.

Spec: https://platform.openai.com/docs/api-reference/files. Only ``purpose = "batch"`` files are taken
(batch outputs are listed with ``batch_output``). An upload is checked whole before it is stored: at most
``batch_max_file_bytes`` (413) and ``batch_max_lines`` request lines (400). With API keys configured, a
key sees only the files it uploaded and its batches' outputs (another's id: 404, as a missing one).
Errors in OpenAI's shape (the default of ``gateway.http.error_handlers``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from litestar import Request, delete, get, post
from litestar.datastructures import State, UploadFile
from litestar.exceptions import ClientException
from litestar.response import File

from gateway.config import Settings
from gateway.errors import InvalidRequest, NotReady, PayloadTooLarge, RouteNotFound
from gateway.http.openapi_bodies import FORM, documented
from gateway.protocol import openai_batch
from gateway.serving import request_context
from gateway.serving.jobs.store import FileRow, Store, new_id
from gateway.serving.jobs.worker import BatchWorker

UPLOAD_FORM = {
    "type": "object",
    "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "JSONL: one request line per line"},
        "purpose": {"type": "string", "enum": ["batch"]},
    },
}
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the purpose field, beyond the file itself


@dataclass
class Jobs:
    """The app's bulk-job state (``state.jobs``): the store and its worker."""

    store: Store
    worker: BatchWorker


def jobs_of(state: State) -> Jobs:
    """The app's bulk jobs.

    Raises:
        NotReady: the data directory could not be opened at start-up (503; the log says why).
    """
    if state.jobs is None:
        raise NotReady(
            "Files and batches are unavailable: the server's data directory could not be opened "
            "(see its log; set GATEWAY_DATA_DIR)."
        )
    return state.jobs


def owner() -> str | None:
    """The label of the calling API key (None on a server without keys): the tenant of files and batches."""
    info = request_context.current()
    return info.api_key if info else None


def to_file_object(row: FileRow) -> openai_batch.FileObject:
    return openai_batch.FileObject(row.id, row.bytes, row.created_at, row.filename, row.purpose)


def find_file(store: Store, file_id: str) -> FileRow:
    """Raises RouteNotFound (404): no such file of the caller's."""
    row = store.get_file(file_id, owner())
    if row is None:
        raise RouteNotFound(f"No such File object: {file_id}", param="id", code="not_found")
    return row


async def read_upload(request: Request) -> None:
    """``before_request``: read the form under the route's body limit (413), no JSON scan."""
    await request.body()


def routes(settings: Settings) -> list:
    """The Files routes, sized by ``settings`` (the upload route's body limit is the file limit)."""

    @post(
        "/v1/files",
        status_code=200,
        tags=["Files and batches"],
        summary="Upload a batch input file",
        before_request=read_upload,
        request_max_body_size=settings.batch_max_file_bytes + FORM_OVERHEAD_BYTES,
        operation_class=documented(UPLOAD_FORM, media_type=FORM, response=openai_batch.FileObject),
    )
    async def upload_file(request: Request, state: State) -> openai_batch.FileObject:
        """Upload a JSONL file of requests (multipart ``file`` and ``purpose=batch``)."""
        try:
            form = await request.form()
        except ClientException as exc:
            raise InvalidRequest(f"The multipart/form-data body is malformed ({exc.detail}).") from None
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch":
            raise InvalidRequest(
                f"Invalid purpose {purpose!r}: this server takes 'batch' files only.", param="purpose"
            )
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("Missing required parameter: 'file' (a multipart file part).", param="file")
        data = await upload.read()
        if len(data) > settings.batch_max_file_bytes:
            raise PayloadTooLarge(
                f"The file holds {len(data)} bytes; at most {settings.batch_max_file_bytes} are allowed."
            )
        lines = await asyncio.to_thread(count_lines, data)
        if lines > settings.batch_max_lines:
            raise InvalidRequest(
                f"The file holds {lines} request lines; a batch takes at most {settings.batch_max_lines}.",
                param="file",
                code="too_many_lines",
            )
        store = jobs_of(state).store
        file_id = new_id("file-")
        await asyncio.to_thread(store.temp_path(file_id).write_bytes, data)
        row = await asyncio.to_thread(
            store.add_file, file_id, owner(), "batch", upload.filename or "upload.jsonl"
        )
        return to_file_object(row)

    return [upload_file, list_files, retrieve_file, file_content, delete_file]


def count_lines(data: bytes) -> int:
    """Non-blank lines of a JSONL file."""
    return sum(1 for line in data.split(b"\n") if line.strip())


@get("/v1/files", tags=["Files and batches"], summary="List files")
async def list_files(
    state: State, purpose: str | None = None, limit: int = 10_000, after: str | None = None
) -> openai_batch.FileList:
    """The caller's files, newest first (``after``: the last id of the previous page)."""
    rows = await asyncio.to_thread(
        jobs_of(state).store.list_files, owner(), purpose, max(1, min(limit, 10_000)) + 1, after
    )
    page = [to_file_object(r) for r in rows[:limit]]
    return openai_batch.FileList(
        page, page[0].id if page else None, page[-1].id if page else None, len(rows) > limit
    )


@get("/v1/files/{file_id:str}", tags=["Files and batches"], summary="Retrieve a file")
async def retrieve_file(state: State, file_id: str) -> openai_batch.FileObject:
    return to_file_object(await asyncio.to_thread(find_file, jobs_of(state).store, file_id))


@get("/v1/files/{file_id:str}/content", tags=["Files and batches"], summary="A file's content")
async def file_content(state: State, file_id: str) -> File:
    """The file's bytes (JSONL), streamed from disk."""
    row = await asyncio.to_thread(find_file, jobs_of(state).store, file_id)
    return File(
        jobs_of(state).store.file_path(row.id),
        filename=row.filename,
        media_type="application/jsonl",
        content_disposition_type="attachment",
    )


@delete("/v1/files/{file_id:str}", status_code=200, tags=["Files and batches"], summary="Delete a file")
async def delete_file(state: State, file_id: str) -> openai_batch.FileDeleted:
    await asyncio.to_thread(find_file, jobs_of(state).store, file_id)
    await asyncio.to_thread(jobs_of(state).store.delete_file, file_id, owner())
    return openai_batch.FileDeleted(file_id)
