"""OpenAI's Batch API: ``POST /v1/batches``, ``GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``.

Spec: https://platform.openai.com/docs/api-reference/batch. A batch's lines are answered by the route of
its ``endpoint`` (``BATCH_ENDPOINTS``), in-process (``gateway.http.inprocess``), by the worker of
``gateway.serving.jobs``; its state lives in the data directory and survives restarts. With API keys
configured, a key sees and cancels only its own batches (another's id: 404).
"""

from __future__ import annotations

import asyncio
import json
import time

from litestar import get, post
from litestar.datastructures import State

from gateway.errors import InvalidRequest, RouteNotFound
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import json_only
from gateway.http.routes.files import Jobs, jobs_of, owner
from gateway.protocol import openai_batch
from gateway.protocol.openai_batch import Batch, CreateBatchRequest
from gateway.serving.jobs.store import BatchRow, Store, new_id

# the routes a batch may target; each line's body is exactly what that route takes
BATCH_ENDPOINTS = ("/v1/embeddings", "/v1/rerank", "/v2/embed")
WINDOW_S = {"24h": 24 * 3600}
CANCELLABLE = ("validating", "in_progress")
NO_BODY = {"type": "object", "properties": {}, "description": "No body (or `{}`)."}


def to_batch(row: BatchRow) -> Batch:
    """A stored batch in OpenAI's shape."""
    errors = json.loads(row.errors) if row.errors else None
    return Batch(
        id=row.id,
        endpoint=row.endpoint,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=row.status,
        created_at=row.created_at,
        request_counts=openai_batch.BatchRequestCounts(row.total, row.completed, row.failed),
        errors=openai_batch.BatchErrors([openai_batch.BatchError(**e) for e in errors]) if errors else None,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        in_progress_at=row.in_progress_at,
        expires_at=row.expires_at,
        finalizing_at=row.finalizing_at,
        completed_at=row.completed_at,
        failed_at=row.failed_at,
        expired_at=row.expired_at,
        cancelling_at=row.cancelling_at,
        cancelled_at=row.cancelled_at,
        metadata=json.loads(row.metadata) if row.metadata else None,
    )


def find_batch(store: Store, batch_id: str) -> BatchRow:
    """Raises RouteNotFound (404): no such batch of the caller's."""
    row = store.get_batch(batch_id, owner())
    if row is None:
        raise RouteNotFound(f"No such Batch object: {batch_id}", param="batch_id", code="not_found")
    return row


@post(
    "/v1/batches",
    status_code=200,
    before_request=json_only,
    tags=["Files and batches"],
    summary="Create a batch",
)
async def create_batch(data: CreateBatchRequest, state: State) -> Batch:
    """Run every request of an uploaded ``batch`` file against ``endpoint``; poll the batch for its status."""
    problem = openai_batch.check_create(data, BATCH_ENDPOINTS)
    if problem is not None:
        raise InvalidRequest(problem[1], param=problem[0])
    jobs: Jobs = jobs_of(state)
    source = await asyncio.to_thread(jobs.store.get_file, data.input_file_id, owner())
    if source is None:
        raise InvalidRequest(f"No such File object: {data.input_file_id}", param="input_file_id")
    if source.purpose != "batch":
        raise InvalidRequest(
            f"File {data.input_file_id} has purpose {source.purpose!r}, not 'batch'.", param="input_file_id"
        )
    now = int(time.time())
    row = BatchRow(
        new_id("batch_"),
        owner(),
        data.endpoint,
        data.input_file_id,
        data.completion_window,
        "validating",
        now,
        expires_at=now + WINDOW_S[data.completion_window],
        metadata=json.dumps(data.metadata) if data.metadata is not None else None,
    )
    await asyncio.to_thread(jobs.store.add_batch, row)
    jobs.worker.wake()
    return to_batch(row)


@get("/v1/batches/{batch_id:str}", tags=["Files and batches"], summary="Retrieve a batch")
async def retrieve_batch(state: State, batch_id: str) -> Batch:
    return to_batch(await asyncio.to_thread(find_batch, jobs_of(state).store, batch_id))


@get("/v1/batches", tags=["Files and batches"], summary="List batches")
async def list_batches(state: State, limit: int = 20, after: str | None = None) -> openai_batch.BatchList:
    """The caller's batches, newest first (``after``: the last id of the previous page)."""
    limit = max(1, min(limit, 100))
    rows = await asyncio.to_thread(jobs_of(state).store.list_batches, owner(), limit + 1, after)
    page = [to_batch(r) for r in rows[:limit]]
    return openai_batch.BatchList(
        page, page[0].id if page else None, page[-1].id if page else None, len(rows) > limit
    )


@post(
    "/v1/batches/{batch_id:str}/cancel",
    status_code=200,
    tags=["Files and batches"],
    summary="Cancel a batch",
    operation_class=documented(NO_BODY, response=Batch),
)
async def cancel_batch(state: State, batch_id: str) -> Batch:
    """Stop a batch: status ``cancelling``, then ``cancelled`` with the lines answered so far in its output
    file (those left unanswered in its error file). A finished batch is returned as it is."""
    jobs: Jobs = jobs_of(state)
    row = await asyncio.to_thread(find_batch, jobs.store, batch_id)
    if await asyncio.to_thread(jobs.store.update_batch, batch_id, only_if=CANCELLABLE, status="cancelling"):
        jobs.worker.cancel(batch_id)
        row = await asyncio.to_thread(find_batch, jobs.store, batch_id)
    return to_batch(row)


ROUTES = [create_batch, retrieve_batch, list_batches, cancel_batch]
