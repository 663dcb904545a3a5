"""Probes and API docs."""

import logging

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client

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
