"""CORS for single-page apps on another origin: real preflight and simple
requests through the middleware stack (django-cors-headers).

None is allowed by default; an allowed origin may call the API's methods with
the ``Authorization`` header and read ``X-Request-ID``; credentials stay off
unless configured; the admin never answers cross-origin."""

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from arcana.settings.base import cors_origins
from tests.commands import refusal, run_manage
from tests.conftest import client_for
from users.models import User

pytestmark = pytest.mark.django_db

APP = "https://app.example.org"
OTHER = "https://evil.example.net"


def preflight(path: str, origin: str, method: str = "PATCH", headers: str = "authorization") -> Any:
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


@pytest.fixture
def allowed(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [APP]


def test_no_origin_is_allowed_by_default(user: User) -> None:
    answer = preflight(f"/api/v1/users/{user.id}", APP)
    assert "access-control-allow-origin" not in answer.headers


def test_an_allowed_origins_preflight_is_answered_for_the_apis_methods(
    allowed: None, user: User
) -> None:
    answer = preflight(f"/api/v1/users/{user.id}", APP, "PATCH", "authorization, content-type")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    methods = {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PATCH", "PUT", "DELETE"} <= methods
    allowed_headers = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert answer.headers["access-control-max-age"] == "3600"
    assert "access-control-allow-credentials" not in answer.headers
    login = preflight("/api/v1/auth/login", APP, "POST", "content-type")
    assert login.headers["access-control-allow-origin"] == APP


def test_an_allowed_origin_reads_the_answer_and_its_request_id(allowed: None, user: User) -> None:
    client = client_for(user)
    answer = client.get(f"/api/v1/users/{user.id}", HTTP_ORIGIN=APP)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert "origin" in answer.headers["vary"].lower()


def test_another_origin_gets_no_cors_headers(allowed: None, user: User) -> None:
    assert "access-control-allow-origin" not in preflight(f"/api/v1/users/{user.id}", OTHER).headers
    answer = client_for(user).get(f"/api/v1/users/{user.id}", HTTP_ORIGIN=OTHER)
    assert answer.status_code == 200  # the browser, not the server, withholds it
    assert "access-control-allow-origin" not in answer.headers


def test_the_admin_never_answers_cross_origin(allowed: None) -> None:
    for path in ("/admin/", "/admin/login/"):
        assert "access-control-allow-origin" not in preflight(path, APP, "POST").headers
        assert "access-control-allow-origin" not in Client().get(path, HTTP_ORIGIN=APP).headers


def test_the_jwks_is_readable_cross_origin(allowed: None) -> None:
    answer = Client().get("/.well-known/jwks.json", HTTP_ORIGIN=APP)
    assert answer.headers["access-control-allow-origin"] == APP


def test_credentials_only_when_configured(allowed: None, settings: Any, user: User) -> None:
    settings.CORS_ALLOW_CREDENTIALS = True
    answer = preflight(f"/api/v1/users/{user.id}", APP)
    assert answer.headers["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(
    "value",
    ["*", "app.example.org", "https://app.example.org/path", "ftp://app.example.org"],
)
def test_a_malformed_origin_is_refused(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="is not an origin"):
        cors_origins([value])


def test_origins_are_normalised() -> None:
    raw = [" https://app.example.org/ ", "http://localhost:4200", "http://[::1]:8080", ""]
    assert cors_origins(raw) == [
        "https://app.example.org",
        "http://localhost:4200",
        "http://[::1]:8080",
    ]


def test_the_process_stops_on_a_bad_origin() -> None:
    result = run_manage("check", env={"CORS_ALLOWED_ORIGINS": "https://ok.example.org,*"})
    assert refusal(result) == (
        "CORS_ALLOWED_ORIGINS: '*' is not an origin (scheme://host[:port], no path, no wildcard)."
    )
