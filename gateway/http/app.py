"""``create_app(settings)``: the Litestar application, its routes, lifespan and error handlers."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from gateway import __version__
from gateway.config import Settings
from gateway.http.auth import cors_config, make_guards
from gateway.http.error_handlers import EXCEPTION_HANDLERS
from gateway.http.inprocess import make_dispatch
from gateway.http.metrics import Metrics
from gateway.http.middleware import observe_requests
from gateway.http.routes import batches as batch_routes
from gateway.http.routes import classify as classify_routes
from gateway.http.routes import cohere_embed as cohere_embed_routes
from gateway.http.routes import embed_rerank as embed_rerank_routes
from gateway.http.routes import files as file_routes
from gateway.http.routes import metrics as metrics_routes
from gateway.http.routes import ollama as ollama_routes
from gateway.http.routes import ollama_models as ollama_model_routes
from gateway.http.routes import openai as openai_routes
from gateway.http.routes import rerank as rerank_routes
from gateway.http.routes import score as score_routes
from gateway.http.routes import similarity as similarity_routes
from gateway.http.routes import system as system_routes
from gateway.http.routes import tei as tei_routes
from gateway.http.routes import tei_outputs as tei_output_routes
from gateway.http.routes import tkr_embed as tkr_embed_routes
from gateway.http.routes import ui as ui_routes
from gateway.http.routes import vllm_pooling as vllm_pooling_routes
from gateway.http.routes import voyage_multimodal as voyage_multimodal_routes
from gateway.http.routes.common import check_body
from gateway.http.routes.uploads import MAX_FORM_PARTS
from gateway.protocol import openai_batch
from gateway.protocol.token_ids import seed_tiktoken_cache
from gateway.serving.jobs.store import Store, default_data_dir
from gateway.serving.jobs.worker import BatchWorker
from gateway.serving.rate_limits import build_rate_limiter
from gateway.serving.registry import Registry

log = logging.getLogger(__name__)


def make_jobs(settings: Settings, dispatch) -> file_routes.Jobs | None:
    """The bulk jobs' store and worker, or None when the data directory cannot be used (the server still
    serves; the Files and Batch routes answer 503 saying why)."""
    data_dir = settings.data_dir or default_data_dir()
    try:
        store = Store(data_dir)
    except (OSError, sqlite3.Error) as exc:
        log.error("bulk jobs are off: the data directory %s cannot be used (%s); set GATEWAY_DATA_DIR",
                  data_dir, exc)
        return None
    worker = BatchWorker(store, dispatch, file_format=openai_batch, max_lines=settings.batch_max_lines)
    return file_routes.Jobs(store, worker)


def create_app(settings: Settings, registry: Registry | None = None) -> Litestar:
    """Build the app. Models load in the lifespan, off the event loop; ``/health`` answers meanwhile.

    Args:
        registry: a prepared registry (tests inject fake engines); default: one built from ``settings``.
    """
    registry = registry or Registry(settings)
    limiter = build_rate_limiter(settings)
    metrics = Metrics(registry, limiter)
    seed_tiktoken_cache()
    jobs = make_jobs(settings, lambda *line: dispatch(*line))
    dispatch = None  # set once the app exists: the worker answers lines through it (gateway.http.inprocess)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        import asyncio

        loading = asyncio.create_task(registry.load_all(on_batch=metrics.batch_observer))
        if jobs is not None:
            jobs.worker.start()  # batches a previous process left unfinished resume here
        try:
            yield
        finally:
            loading.cancel()
            if jobs is not None:
                await jobs.worker.stop()
            await registry.close()
            if jobs is not None:
                jobs.store.close()

    app = Litestar(
        route_handlers=[*openai_routes.ROUTES, *rerank_routes.ROUTES, *system_routes.ROUTES,
                        *metrics_routes.ROUTES, *cohere_embed_routes.ROUTES, *tei_routes.ROUTES,
                        *tei_output_routes.ROUTES, *vllm_pooling_routes.ROUTES,
                        *voyage_multimodal_routes.ROUTES, *ollama_routes.ROUTES, *ollama_model_routes.ROUTES,
                        *embed_rerank_routes.ROUTES, *tkr_embed_routes.ROUTES, *similarity_routes.ROUTES,
                        *classify_routes.ROUTES, *score_routes.ROUTES,
                        *file_routes.routes(settings), *batch_routes.ROUTES,
                        *ui_routes.swagger_routes(), *(ui_routes.console_routes() if settings.ui else [])],
        state=State({"registry": registry, "settings": settings, "started_at": int(time.time()),
                     "started_monotonic": time.monotonic(), "metrics": metrics, "jobs": jobs}),
        guards=make_guards(settings, [m.config for m in registry.models], limiter),
        cors_config=cors_config(settings),
        logging_config=None,  # keep the process's logging (gateway.http.request_log), not Litestar's default
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=check_body,  # JSON depth and body size on every POST route (routes/common.py)
        request_max_body_size=settings.max_body_bytes,
        multipart_form_part_limit=MAX_FORM_PARTS,  # the upload routes' forms (routes/uploads.py)
        openapi_config=OpenAPIConfig(title="gateway", version=__version__, path="/schema",
                                     render_plugins=ui_routes.docs_plugins()),  # swagger-ui from the package
    )
    observe_requests(app, metrics)  # request ids, X-Process-Time, access log, request metrics
    dispatch = make_dispatch(app, settings.batch_tpm_share)
    return app
