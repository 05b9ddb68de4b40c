"""The server's logs: uvicorn's plain text, or with ``COMMERCE_LOG_FORMAT=json`` one JSON
object a line, each with the request id, the order id and the trace id where there is one."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from commerce_core.telemetry import current_order_id
from commerce_core_gateway.headers import current_request_id

__all__ = ["FORMATS", "JsonFormatter", "log_config"]

FORMATS = ("text", "json")


def _trace_id() -> str | None:
    """The current OpenTelemetry trace's id, when a tracer is at work."""
    try:
        from opentelemetry import trace  # noqa: PLC0415 - optional: only with tracing
    except ImportError:  # pragma: no cover - installed with the tracing adapter
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", "order_id", "trace_id"}``
    (the ids ``null`` where there is none), ``exception`` with the traceback of an error."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = current_request_id()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
            "order_id": current_order_id(),
            "trace_id": _trace_id(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` for the format: its own for text; for JSON, every logger
    (uvicorn's, the access log, the library's) through `JsonFormatter` to stderr."""
    if log_format != "json":
        return LOGGING_CONFIG
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "commerce_server.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "INFO", "propagate": True},
        },
    }
