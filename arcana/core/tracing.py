"""OpenTelemetry spans where the project makes them itself: the internal hops
(both ends, with W3C ``traceparent`` in the call's metadata) and SQL statements.

Off unless :func:`enable` was called (``arcana.observe.traces`` does, when
``OTEL_TRACES_EXPORTER`` names an exporter): every helper then costs one
global read. The REST edge and the public gRPC server are traced by
opentelemetry-instrumentation-django and -grpc.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

_tracer: Any = None
_provider: Any = None


def enable(tracer: Any, provider: Any) -> None:
    """Make spans with ``tracer`` (an OpenTelemetry ``Tracer`` of ``provider``) from now on."""
    global _tracer, _provider
    _tracer, _provider = tracer, provider


def disable() -> None:
    global _tracer, _provider
    _tracer = _provider = None


def provider() -> Any:
    """The ``TracerProvider`` spans are made with, or None when tracing is off."""
    return _provider


def enabled() -> bool:
    return _tracer is not None


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation import get_current_span

    context = get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


@contextmanager
def _client_span(name: str, metadata: list[tuple[str, str]]) -> Iterator[None]:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        name, kind=SpanKind.CLIENT, attributes={"rpc.system": "grpc", "rpc.method": name}
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # traceparent (and tracestate) of this span
        metadata.extend(carrier.items())
        yield


def client_span(name: str, metadata: list[tuple[str, str]]) -> AbstractContextManager[None]:
    """A client span around one internal call, its context added to ``metadata``."""
    if _tracer is None:
        return nullcontext()
    return _client_span(name, metadata)


@contextmanager
def _server_span(name: str, metadata: Sequence[tuple[str, Any]]) -> Iterator[None]:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    carrier = {key: value for key, value in metadata if isinstance(value, str)}
    with _tracer.start_as_current_span(
        name,
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.method": name},
    ):
        yield


def server_span(name: str, metadata: Sequence[tuple[str, Any]]) -> AbstractContextManager[None]:
    """A server span for one internal call, child of the caller's span named in
    ``metadata`` (``traceparent``)."""
    if _tracer is None:
        return nullcontext()
    return _server_span(name, metadata)


def statement_spans(vendor: str) -> Callable[..., Any]:
    """A ``connection.execute_wrapper`` making one span per SQL statement
    while tracing is on (its text has placeholders, never the parameters)."""

    def traced(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if _tracer is None:
            return execute(sql, params, many, context)
        from opentelemetry.trace import SpanKind

        attributes: Mapping[str, str] = {"db.system": vendor, "db.statement": sql}
        name = sql.split(None, 1)[0].upper() if sql else "SQL"
        with _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
            return execute(sql, params, many, context)

    traced.arcana_statement_spans = True  # type: ignore[attr-defined]  # found again by install
    return traced
