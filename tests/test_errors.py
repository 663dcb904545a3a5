"""Every error is JSON in the contract's shape; nothing leaks a traceback."""

import json

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from arcana.parsers import MAX_JSON_DEPTH
from users.models import User

pytestmark = pytest.mark.django_db


def test_malformed_json_is_400(anon_client: APIClient) -> None:
    response = anon_client.post(
        "/api/v1/auth/register", '{"name": "x",', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("body", ["[]", '"text"', "null", "42"])
def test_json_that_is_not_an_object_is_400(anon_client: APIClient, body: str) -> None:
    response = anon_client.post("/api/v1/auth/register", body, content_type="application/json")
    assert response.status_code == 400
    assert "errors" in response.json()


def test_wrong_content_type_is_415(anon_client: APIClient) -> None:
    response = anon_client.post(
        "/api/v1/auth/login", "email=a&password=b", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@override_settings(REQUEST_BODY_MAX_BYTES=1024)
def test_oversized_body_is_413_and_writes_nothing(anon_client: APIClient) -> None:
    body = json.dumps({"name": "x" * 2000, "email": "big@example.com", "password": "p" * 20})
    response = anon_client.post("/api/v1/auth/register", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert not User.objects.exists()


def test_bad_content_length_is_400() -> None:
    response = Client().generic(
        "POST", "/api/v1/auth/login", b"{}", CONTENT_LENGTH="abc", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_unknown_url_is_json_404(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found.", "code": "not_found"}


def test_method_not_allowed_is_json(user_client: APIClient) -> None:
    response = user_client.delete("/api/v1/auth/me")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def _break_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)


def test_database_down_is_503_json(
    monkeypatch: pytest.MonkeyPatch, admin_client: APIClient
) -> None:
    _break_database(monkeypatch)
    response = admin_client.get("/api/v1/users")  # the caller is cached; the list is not
    assert response.status_code == 503
    cache.clear()  # now authentication itself needs the database: still 503, never 401
    assert admin_client.get("/api/v1/users").status_code == 503
    login = APIClient().post(
        "/api/v1/auth/login", {"email": "a@b.c", "password": "x" * 10}, format="json"
    )
    assert login.status_code == 503
    assert login.json() == {
        "error": "The database is unavailable; try again shortly.",
        "code": "service_unavailable",
    }


def test_database_down_outside_drf_is_503_json(
    monkeypatch: pytest.MonkeyPatch, admin_user: User
) -> None:
    client = Client()
    client.force_login(admin_user)
    _break_database(monkeypatch)
    response = client.get("/admin/users/user/")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


def test_unexpected_error_is_json_500_without_traceback(
    monkeypatch: pytest.MonkeyPatch, user_client: APIClient
) -> None:
    def explode(**kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("users.services.user_update", explode)
    user_client.raise_request_exception = False
    response = user_client.patch("/api/v1/auth/me", {"name": "x"}, format="json")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error.", "code": "internal_error"}
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


# --- found by fuzzing (tests/hardening) ---------------------------------------------------


@pytest.mark.parametrize("depth", [33, 950, 5000])
def test_deeply_nested_json_is_400_not_500(anon_client: APIClient, depth: int) -> None:
    """The decoder recursed until RecursionError: a 500 for a 10 kB body."""
    anon_client.raise_request_exception = False
    body = '{"email": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = anon_client.post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_json_within_the_depth_limit_reaches_validation(anon_client: APIClient) -> None:
    depth = MAX_JSON_DEPTH - 1  # plus the enclosing object: exactly the limit
    body = '{"email": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = anon_client.post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"errors": {"email": ["Not a valid string."]}}


def test_nested_field_errors_are_flat_strings(admin_client: APIClient, user: User) -> None:
    """List items' errors came back as {"roles": {"0": [...]}}, not {field: [str]}."""
    response = admin_client.patch(
        f"/api/v1/users/{user.pk}", {"roles": ["user", "emperor"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"errors": {"roles": ['Item 1: "emperor" is not a valid choice.']}}
