"""Structured logs (structlog): one line per request, JSON in production.

Every record of the process, the project's and Django's and grpc's alike,
goes through stdlib logging to one handler whose formatter is structlog's
``ProcessorFormatter``: JSON lines (``LOG_FORMAT=json``, the default and
production's) or readable console lines (``console``, local settings'). The
request line (:func:`request_line`) is one line per REST request or gRPC
call, with its request id, trace id, user id, route or RPC, status and
duration; never a body, a header, an email, a password, a token or a hash.

The request line is written on every call, so it takes the short way: it
is written to the process's standard error directly, one ``write(2)`` of the
whole line (no lock: a write of a line that short is never interleaved with
another), not through stdlib logging, whose record, caller lookup and record
copy per line cost four times as much, nor through a locked, flushed text
stream, where threads queued (``bench/observe.py --profile``). In JSON it is
not even rendered by structlog (:class:`JsonLines`): the same line, byte for
byte, from one prebuilt encoder, without structlog's per-line context copy,
processor chain and ``json.dumps`` building an encoder per line; readable
console lines still come from structlog.
"""

from __future__ import annotations

import json
import json.encoder
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

LOG_FORMATS = ("json", "console")
REQUEST_LOGGER = "arcana.request"


def add_pid(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The process that logged (which REST or gRPC worker), as the
    project's plain log format always said."""
    event["pid"] = os.getpid()
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_pid,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def checked_format(log_format: str) -> str:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return log_format


def _renderer(log_format: str) -> Any:
    if checked_format(log_format) == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def formatter(log_format: str) -> dict[str, Any]:
    """The LOGGING formatter for ``log_format`` (``json`` or ``console``)."""
    renderer = _renderer(log_format)
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


class LineWriter:
    """What structlog hands the rendered line to: one ``os.write`` per line
    where the stream has a file descriptor, else the stream's own write."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        try:
            stream.flush()  # anything it holds goes first
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError, AttributeError):  # io.StringIO, a closed stream
            self._fd = None

    def info(self, message: str) -> None:
        line = message + "\n"
        if self._fd is not None:
            os.write(self._fd, line.encode())
        else:
            self._stream.write(line)

    msg = info


def _line_encoder() -> Callable[[dict[str, Any]], str]:
    make = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
    if make is None:  # a Python without the _json accelerator
        return json.JSONEncoder(default=repr).encode
    # (markers, default, encode str, indent, key and item separators,
    # sort_keys, skipkeys, allow_nan): json.dumps' defaults, no circular check
    # (a line's values are flat).
    encode = make(
        None, repr, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return lambda line: "".join(encode(line, 0))


class JsonLines:
    """The request line in JSON as structlog's chain for it (``add_log_level``,
    ``TimeStamper(fmt="iso", utc=True)``, ``JSONRenderer``, bound ``logger``)
    renders it, keys in the same order, without the chain: a dict built once
    per line and one C encode."""

    def __init__(self, writer: LineWriter) -> None:
        self._write = writer.info
        # json.dumps with ``default`` builds a new encoder per call; this is
        # that encoder (structlog's JSONRenderer settings: its separators, and
        # repr for anything JSON has no type for), built once, and called
        # without JSONEncoder.encode's per-call set-up where the C one exists.
        self._encode = _line_encoder()
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self) -> str:
        """``datetime.now(UTC).isoformat()`` with ``Z`` for the offset, as
        structlog stamps it, with the date and time formatted once a second."""
        now = time.time()
        whole = int(now)
        second, prefix = self._second
        if second != whole:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self._second = (whole, prefix)  # one tuple: threads see a matching pair
        return f"{prefix}.{int((now - whole) * 1e6):06d}Z"

    def info(self, event: str, **fields: Any) -> None:
        line: dict[str, Any] = {"logger": REQUEST_LOGGER}
        line.update(fields)
        line["event"] = event
        line["level"] = "info"
        line["timestamp"] = self._timestamp()
        self._write(self._encode(line))


def request_logger(log_format: str, stream: TextIO | None = None) -> Any:
    """The request line's logger: ``log_format`` lines on ``stream`` (standard error)."""
    if checked_format(log_format) == "json":
        return JsonLines(LineWriter(stream or sys.stderr))
    return structlog.wrap_logger(
        LineWriter(stream or sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _renderer(log_format),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(logger=REQUEST_LOGGER)


def use_request_logger(logger: Any) -> Any:
    """Write request lines with ``logger`` from now on (None: the settings'
    on standard error, made at the next line); returns the one before."""
    global _request_log
    before, _request_log = _request_log, logger
    return before


def request_line(**fields: Any) -> None:
    """Log one request: ``event="request"`` and ``fields``."""
    global _request_log
    if _request_log is None:
        from django.conf import settings

        _request_log = request_logger(settings.LOG_FORMAT)
    _request_log.info("request", **fields)
