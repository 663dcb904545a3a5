"""Probes and API docs."""

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client

from arcana.core import internal
from arcana.grpc.server import ArcanaServer, build_server
from arcana.modes import Mode, Tier

pytestmark = pytest.mark.django_db


def test_healthz() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ok() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok"}


def test_readyz_database_down_logs_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("down")

    with caplog.at_level(logging.WARNING, logger="arcana.health"):
        monkeypatch.setattr(connection, "ensure_connection", refuse)
        for _ in range(3):
            response = Client().get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["database"] == "unavailable"
        monkeypatch.undo()
        assert Client().get("/readyz").status_code == 200
    messages = [record.getMessage() for record in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1
    assert sum("database available again" in m for m in messages) == 1


def test_readyz_cache_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("down")

    monkeypatch.setattr(cache, "set", refuse)
    response = Client().get("/readyz")
    # The cache fails open, so the instance stays in rotation, flagged degraded.
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "degraded"}


def test_openapi_schema_has_bearer_scheme_and_every_path() -> None:
    response = Client().get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    paths = set(schema["paths"])
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/logout-all",
        "/api/v1/auth/me",
        "/api/v1/auth/password",
        "/api/v1/users",
        "/api/v1/users/{id}",
    ):
        assert path in paths
    assert "security" not in schema["paths"]["/api/v1/auth/login"]["post"] or schema["paths"][
        "/api/v1/auth/login"
    ]["post"]["security"] in ([], [{}])


def test_swagger_ui_uses_local_assets() -> None:
    html = Client().get("/api/docs").content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html


def _schema() -> dict[str, Any]:
    response = Client().get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error_statuses(operation: dict[str, Any]) -> set[str]:
    return {status for status in operation["responses"] if int(status) >= 400}


def test_openapi_documents_the_error_responses_of_each_operation() -> None:
    """Schema-driven clients and fuzzers rely on these (tests/hardening)."""
    paths = _schema()["paths"]
    for operations in paths.values():
        for operation in operations.values():
            for status in ("406", "503"):
                body = operation["responses"][status]["content"]["application/json"]
                assert body["schema"] == ERROR_REF
    assert _error_statuses(paths["/api/v1/auth/login"]["post"]) == {
        "400", "401", "406", "413", "415", "429", "503",
    }  # fmt: skip
    assert _error_statuses(paths["/api/v1/auth/register"]["post"]) == {
        "400", "406", "409", "413", "415", "429", "503",
    }  # fmt: skip
    assert _error_statuses(paths["/api/v1/auth/me"]["get"]) == {"401", "406", "503"}
    assert _error_statuses(paths["/api/v1/users"]["get"]) == {"400", "401", "403", "406", "503"}
    assert _error_statuses(paths["/api/v1/users/{id}"]["get"]) == {"401", "404", "406", "503"}
    assert _error_statuses(paths["/api/v1/users/{id}"]["patch"]) == {
        "400", "401", "403", "404", "406", "409", "413", "415", "503",
    }  # fmt: skip
    assert _error_statuses(paths["/api/v1/users/{id}"]["delete"]) == {
        "401", "403", "404", "406", "503",
    }  # fmt: skip
    throttled = paths["/api/v1/auth/login"]["post"]["responses"]["429"]
    assert throttled["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}


def test_openapi_error_bodies_have_the_contract_shape() -> None:
    schema = _schema()
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["error", "code"]
    assert components["ValidationError"]["properties"]["errors"]["additionalProperties"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    bad_request = schema["paths"]["/api/v1/users"]["post"]["responses"]["400"]
    assert bad_request["content"]["application/json"]["schema"] == {
        "oneOf": [{"$ref": "#/components/schemas/ValidationError"}, ERROR_REF]
    }


def test_openapi_user_list_is_one_page_with_documented_query() -> None:
    """The list was documented as an array of pages (found by tests/hardening)."""
    operation = _schema()["paths"]["/api/v1/users"]["get"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/UserPageOutput"}
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert parameters["page"]["minimum"] == 0
    assert (parameters["size"]["minimum"], parameters["size"]["maximum"]) == (1, 100)
    # The enum is the component's (one type in generated clients).
    assert parameters["sync_status"] == {"$ref": "#/components/schemas/SyncStatusEnum"}
    assert _schema()["components"]["schemas"]["SyncStatusEnum"]["enum"] == [
        "synced",
        "pending",
        "failed",
    ]
    assert parameters["search"]["type"] == "string"


# --- readiness in the tiers without a database: the tier below ------------------------


@dataclasses.dataclass
class Below:
    """The tier below, in this process: its internal server, started and stopped at will."""

    home: str
    port: int = 0
    server: ArcanaServer | None = None

    def start(self) -> None:
        self.server = build_server(
            f"127.0.0.1:{self.port}",  # the same port again once it has one
            max_workers=2,
            max_message_bytes=django_settings.GRPC_MAX_MESSAGE_BYTES,
            health_interval=3600,  # its own watcher would look at this process's deployment
            internal=self.home,
        )
        self.server.start()
        self.port = self.server.port

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop(grace=0).wait()
        self.server = None


@pytest.fixture
def below(request: pytest.FixtureRequest, settings: Any) -> Iterator[Below]:
    """This process is the tier ``request.param`` names; the one below it serves here."""
    tier, home = request.param
    settings.ARCANA_INTERNAL_TLS_CERT = ""
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, mode=Mode.LAYERED, tier=Tier(tier), internal_insecure=True
    )
    started = Below(home)
    started.start()
    targets = (f"127.0.0.1:{started.port}",)
    field = "service_targets" if home == "service" else "repository_targets"
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(settings.ARCANA_DEPLOYMENT, **{field: targets})
    internal._health_channels.clear()  # built from the deployment on first use
    yield started
    if started.server is not None:
        started.stop()
    for channels in internal._health_channels.values():
        for channel in channels:
            channel.close()
    internal._health_channels.clear()


def _wait_ready(client: Client, status: int) -> Any:
    deadline = time.monotonic() + 10
    response = client.get("/readyz")
    while response.status_code != status and time.monotonic() < deadline:
        time.sleep(0.05)
        response = client.get("/readyz")
    return response


@pytest.mark.parametrize(
    "below",
    [("controller", "service"), ("service", "repository")],
    indirect=True,
    ids=["controller", "service"],
)
def test_readyz_follows_the_tier_below(below: Below, caplog: pytest.LogCaptureFixture) -> None:
    client = Client()
    name = below.home
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {name: "ok", "cache": "ok"}}

    with caplog.at_level(logging.WARNING, logger="arcana.health"):
        below.stop()
        response = _wait_ready(client, 503)
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {name: "unavailable", "cache": "ok"},
        }
        assert client.get("/readyz").status_code == 503

        below.start()  # back on its port: the cached channel reconnects
        response = _wait_ready(client, 200)
        assert response.status_code == 200
        assert response.json()["checks"][name] == "ok"
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count(f"readiness: {name} unavailable (ConnectionError)") == 1
    assert messages.count(f"readiness: {name} available again") == 1
