"""OpenTelemetry traces: one call, one trace, with spans from every tier it crossed."""

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from django.conf import settings
from django.core.cache import cache
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from rest_framework.test import APIClient

from arcana.core import tracing
from arcana.observe import traces
from arcana.observe.logs import request_logger, use_request_logger
from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.commands import child_env
from tests.conftest import client_for
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import auth_for, live_db, start_server
from tests.layered import Layered
from users.models import User


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Traces on, into memory, for the test (OTEL_TRACES_EXPORTER does this for real)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces.instrument(provider)
    yield exporter
    traces.uninstrument()
    provider.shutdown()


def _connected(found: tuple[ReadableSpan, ...]) -> ReadableSpan:
    """The one root of ``found``, after checking every span is in its trace
    and has its parent among them."""
    assert len({span.context.trace_id for span in found}) == 1, [s.name for s in found]
    ids = {span.context.span_id for span in found}
    roots = [span for span in found if span.parent is None]
    assert len(roots) == 1, [span.name for span in roots]
    for span in found:
        if span.parent is not None:
            assert span.parent.span_id in ids, f"{span.name}: parent not in the trace"
    return roots[0]


@live_db
def test_a_layered_rest_call_is_one_trace_through_every_tier(
    layered: Layered, spans: InMemorySpanExporter, user: User
) -> None:
    client = client_for(user)
    cache.clear()  # the user's read goes down to the repository tier's database
    spans.clear()
    response = client.get(f"/api/v1/users/{user.id}")
    assert response.status_code == 200
    found = spans.get_finished_spans()
    root = _connected(found)
    assert root.kind == SpanKind.SERVER
    assert root.name.startswith("GET ")  # Django's span, at the controller tier
    servers = {span.name for span in found if span.kind == SpanKind.SERVER} - {root.name}
    assert any(name.startswith("users.service.") for name in servers), servers  # service tier
    assert any(name.startswith("users.repo.") for name in servers), servers  # repository tier
    statements = [span for span in found if span.attributes and "db.system" in span.attributes]
    assert statements, [span.name for span in found]
    by_id = {span.context.span_id: span for span in found}
    for statement in statements:  # the SQL ran inside the repository tier's span
        parent = by_id[statement.parent.span_id] if statement.parent else None
        while parent is not None and not parent.name.startswith("users.repo."):
            parent = by_id[parent.parent.span_id] if parent.parent else None
        assert parent is not None, statement.name
        assert parent.kind == SpanKind.SERVER
        text = str(dict(statement.attributes or {})["db.statement"])
        assert str(user.id).replace("-", "") not in text  # placeholders, not parameters
        assert str(user.id) not in text
    # The request id went along too, and the response names the trace nowhere.
    assert response["X-Request-ID"]


@live_db
def test_a_layered_login_is_one_trace(
    layered: Layered, spans: InMemorySpanExporter, user: User
) -> None:
    spans.clear()
    response = APIClient().post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    found = spans.get_finished_spans()
    _connected(found)
    names = {span.name for span in found}
    assert "authn.service.auth_login" in names
    # No statement carries a parameter: the password's hash is never in a span.
    for span in found:
        assert DEFAULT_PASSWORD not in json.dumps(dict(span.attributes or {}))
        assert "argon2" not in json.dumps(dict(span.attributes or {}))


@live_db
def test_a_public_grpc_call_is_traced_and_its_log_line_names_the_trace(
    spans: InMemorySpanExporter, user: User
) -> None:
    stream = io.StringIO()
    before = use_request_logger(request_logger("json", stream))
    server = start_server(health_interval=3600)  # built with tracing on: the interceptor
    metadata = auth_for(user)
    spans.clear()  # the set-up's own statements
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            UserServiceStub(channel).GetUser(
                users_pb2.GetUserRequest(id=str(user.id)), metadata=metadata
            )
    finally:
        server.stop(grace=0).wait()
        use_request_logger(before)
    found = spans.get_finished_spans()
    root = _connected(found)
    assert root.kind == SpanKind.SERVER
    assert root.name == "/arcana.v1.UserService/GetUser"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "no request line"
    assert lines[-1]["trace_id"] == f"{root.context.trace_id:032x}"


def _probe(env: dict[str, str]) -> list[str]:
    # (redis imports the SDK itself when it is installed: what counts is that
    # nothing set a tracer provider up or instrumented Django.)
    probe = (
        "import django; django.setup(); "
        "from django.conf import settings; from opentelemetry import trace; "
        "from arcana.core import tracing; "
        "print(tracing.enabled(), type(trace.get_tracer_provider()).__name__, "
        "any('opentelemetry' in m for m in settings.MIDDLEWARE))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=settings.BASE_DIR,
        env=child_env("arcana.settings.test", env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_tracing_is_off_by_default_and_sets_nothing_up() -> None:
    assert not tracing.enabled()
    assert _probe({}) == ["False", "ProxyTracerProvider", "False"]
    assert _probe({"OTEL_TRACES_EXPORTER": "none"}) == ["False", "ProxyTracerProvider", "False"]


def test_an_exporter_named_sets_tracing_up() -> None:
    assert _probe({"OTEL_TRACES_EXPORTER": "console"}) == ["True", "TracerProvider", "True"]


def test_an_unknown_exporter_stops_the_process() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=child_env("arcana.settings.test", {"OTEL_TRACES_EXPORTER": "zipkin-ish"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "OTEL_TRACES_EXPORTER must be one of otlp, console or none" in result.stderr
