"""Structured logs (structlog): one line per request, JSON in production.

Every record of the process, the project's and Django's and grpc's alike,
goes through stdlib logging to one handler whose formatter is structlog's
``ProcessorFormatter``: JSON lines (``LOG_FORMAT=json``, the default and
production's) or readable console lines (``console``, local settings'). The
request line (:func:`request_line`) is one record per REST request or gRPC
call, with its request id, trace id, user id, route or RPC, status and
duration; never a body, a header, an email, a password, a token or a hash.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

LOG_FORMATS = ("json", "console")
REQUEST_LOGGER = "arcana.request"


def _shared_processors() -> list[Any]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(log_format: str) -> dict[str, Any]:
    """The LOGGING formatter for ``log_format`` (``json`` or ``console``)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if log_format == "json":
        final.append(structlog.processors.format_exc_info)  # tracebacks as one field
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [*final, renderer],
        # Records from stdlib loggers (Django, grpc, the project's): their
        # message, level, logger, time and any ``extra`` fields.
        "foreign_pre_chain": [*_shared_processors(), structlog.stdlib.ExtraAdder()],
    }


def configure() -> None:
    """structlog's own loggers hand their event to stdlib logging, whose
    handler (``LOGGING``) renders it."""
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


_request_log: Any = None


def request_line(**fields: Any) -> None:
    """Log one request: ``event="request"`` and ``fields``."""
    global _request_log
    if _request_log is None:
        _request_log = structlog.get_logger(REQUEST_LOGGER)
    _request_log.info("request", **fields)
