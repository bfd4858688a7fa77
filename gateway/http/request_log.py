"""Logging: one line per request on the ``gateway.access`` logger, as JSON or text.

With ``log_format = "json"`` every log record of the process (uvicorn's included) is one JSON object
per line: ``ts``, ``level``, ``logger``, ``message``, the ``request_id`` of the request it happened in,
and for access lines ``request_id, method, route, path, status, duration_ms, model, inputs, tokens,
api_key, client``. Request bodies and API keys are never logged (``api_key`` is the key's label).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import msgspec

from gateway.config import Settings
from gateway.serving import request_context
from gateway.serving.request_context import RequestInfo

access_log = logging.getLogger("gateway.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Tag every record with the id of the request being served (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            info = request_context.current()
            record.request_id = info.request_id if info else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the fields of access lines become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """The usual one-line text format; access lines end with their fields as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        line = super().format(record)
        if not fields:
            return line
        return line + " " + " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)


def configure_logging(settings: Settings) -> None:
    """Send every logger to stderr in ``settings.log_format`` at ``settings.log_level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    logging.captureWarnings(True)  # library warnings become records in the same format
    disable_progress_bars()


def disable_progress_bars() -> None:
    """Stop the tqdm bars model loading draws on stderr (transformers' "Loading weights", the hub's
    downloads): a server's stderr is its log, one record per line (one JSON object in ``json``), and a
    bar there is a broken line.

    ``HF_HUB_DISABLE_PROGRESS_BARS`` is read when huggingface_hub is imported, and transformers takes its
    switch from the hub's when it is imported; processes started later (a local Ray cluster's workers)
    inherit it. Libraries already imported are switched off directly, without importing any that are not.
    """
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars as disable_hub_bars

        disable_hub_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def log_request(info: RequestInfo, *, method: str, route: str, path: str, status: int, seconds: float,
                client: str | None) -> None:
    """Write the access line of one finished request.

    The record is made and handled directly (``Logger.makeRecord`` / ``handle``), not through
    ``Logger.info``, whose ``findCaller`` walks the stack for a file and line no format prints: a third of
    the line's cost, on every request.
    """
    # a batch job's lines are requests too (metrics count them), but 100,000 access lines would drown the log
    level = logging.DEBUG if info.batch is not None else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    fields = {
        "request_id": info.request_id,
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "model": info.model,
        "inputs": info.inputs,
        "tokens": info.tokens,
        "api_key": info.api_key,
        "client": client,
    }
    record = access_log.makeRecord(access_log.name, level, __file__, 0, "%s %s %d", (method, path, status),
                                   None, "log_request", {"fields": fields, "request_id": info.request_id})
    access_log.handle(record)
