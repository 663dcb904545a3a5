"""API_DOCS: the schema and Swagger UI public, for admins only, or off."""

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for
from users.models import User

pytestmark = pytest.mark.django_db

SCHEMA, DOCS = "/api/schema", "/api/docs"
SCHEMA_ACCEPT = "application/vnd.oai.openapi+json"


def get(client: Client, path: str) -> Any:
    return client.get(path, HTTP_ACCEPT=SCHEMA_ACCEPT if path == SCHEMA else "text/html")


def assert_json_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code


@pytest.fixture
def staff_session(db: Any) -> Client:
    client = Client()
    client.force_login(
        User.objects.create_superuser(email="op@example.com", name="Op", password="x")
    )
    return client


@pytest.mark.parametrize("path", [SCHEMA, DOCS])
def test_public_docs_are_open_to_anyone(path: str) -> None:
    response = get(APIClient(), path)
    assert response.status_code == 200


@pytest.mark.parametrize("path", [SCHEMA, DOCS])
def test_admin_docs_refuse_the_anonymous(settings: Any, path: str) -> None:
    settings.API_DOCS = "admin"
    assert_json_error(get(APIClient(), path), 401, "not_authenticated")
    assert_json_error(get(client_for(token="not-a-jwt"), path), 401, "token_not_valid")


@pytest.mark.parametrize("path", [SCHEMA, DOCS])
def test_admin_docs_refuse_users_without_the_admin_role(
    settings: Any, user: User, path: str
) -> None:
    settings.API_DOCS = "admin"
    assert_json_error(get(client_for(user), path), 403, "permission_denied")
    session = Client()
    session.force_login(user)  # signed in to the admin site, but not staff
    assert_json_error(get(session, path), 403, "permission_denied")


@pytest.mark.parametrize("path", [SCHEMA, DOCS])
def test_admin_docs_serve_api_admins(settings: Any, admin_user: User, path: str) -> None:
    settings.API_DOCS = "admin"
    response = get(client_for(admin_user), path)
    assert response.status_code == 200


def test_admin_docs_serve_a_staff_admin_session(settings: Any, staff_session: Client) -> None:
    settings.API_DOCS = "admin"
    page = get(staff_session, DOCS)
    assert page.status_code == 200
    assert "swagger-ui" in page.content.decode()
    schema = get(staff_session, SCHEMA)  # what the page then fetches, with the same cookie
    assert schema.status_code == 200
    assert "/api/v1/users" in schema.json()["paths"]


@pytest.mark.parametrize("path", [SCHEMA, DOCS])
def test_off_docs_are_not_found_for_everyone(
    settings: Any, admin_user: User, staff_session: Client, path: str
) -> None:
    settings.API_DOCS = "off"
    for client in (APIClient(), client_for(admin_user), client_for(token="bad"), staff_session):
        response = get(client, path)
        assert response.status_code == 404
        assert response.json() == {"error": "Not found.", "code": "not_found"}
