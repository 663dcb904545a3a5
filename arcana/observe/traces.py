"""OpenTelemetry traces: off unless ``OTEL_TRACES_EXPORTER`` names an exporter.

Off (unset or ``none``), nothing of the SDK is imported or set up, and the
project's own span helpers (``arcana.core.tracing``) cost one global read.
On, this process gets a ``TracerProvider`` whose resource names it
(``OTEL_SERVICE_NAME``, else ``arcana-<deployment>``) and the exporter chosen
by the standard variables: ``otlp`` (OTLP over HTTP/protobuf,
``OTEL_EXPORTER_OTLP_ENDPOINT`` and friends, read by the exporter itself) or
``console``; Django requests are traced by opentelemetry-instrumentation-django,
the public gRPC server by opentelemetry-instrumentation-grpc's interceptor
(``arcana.grpc.server``), the internal hops and SQL statements by the
project's own spans, all with W3C trace context.
"""

from __future__ import annotations

import os
from typing import Any

from arcana.core import tracing

EXPORTERS = ("otlp", "console")
TRACER_NAME = "arcana"


def exporter_name() -> str | None:
    """``OTEL_TRACES_EXPORTER`` when it asks for traces, else None; raises
    ``ValueError`` for an exporter this project does not ship."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if name in ("", "none"):
        return None
    if name not in EXPORTERS:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)} or none, not {name!r}"
        )
    return name


def _exporter(name: str) -> Any:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def setup_from_env(service_name: str) -> bool:
    """Trace this process if the environment asks for it; whether it does."""
    name = exporter_name()
    if name is None:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    instrument(provider)
    return True


def instrument(provider: Any) -> None:
    """Trace with ``provider``: Django requests, and the project's own spans."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument(tracer_provider=provider)
    tracing.enable(provider.get_tracer(TRACER_NAME), provider)


def uninstrument() -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().uninstrument()
    tracing.disable()
