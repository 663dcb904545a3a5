"""What a new user's first session found: HTML 404 pages, a PATCH /auth/me that
refused a body README says is ignored, and admin-made users without a role."""

from typing import Any

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from users.models import User

pytestmark = pytest.mark.django_db

NOT_FOUND = {"error": "Not found.", "code": "not_found"}
UNKNOWN = [
    "/api/v1/users/",
    "/api/v1/auth/login/",
    "/api/v1/auth/me/",
    "/api/v1/users/some-id/",
    "/api/v1/nothing-here",
    "/api/v1",
    "/api/docs/",
    "/nope",
    "/nope/",
]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize("path", UNKNOWN)
def test_unknown_routes_are_json_404(path: str, method: str, debug: bool) -> None:
    with override_settings(DEBUG=debug):
        response = getattr(Client(), method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_the_admin_keeps_its_own_behaviour(debug: bool) -> None:
    with override_settings(DEBUG=debug):
        assert Client().get("/admin").status_code == 301  # APPEND_SLASH, to /admin/
        anonymous = Client().get("/admin/nope/")
        assert (anonymous.status_code, anonymous["Location"]) == (
            302,
            "/admin/login/?next=/admin/nope/",
        )


def test_the_admin_404_page_is_kept_with_debug_on() -> None:
    client = Client()
    client.force_login(
        User.objects.create_superuser(email="op@example.com", name="Op", password="x")
    )
    with override_settings(DEBUG=True):
        response = client.get("/admin/nope/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_api_404_from_a_view_is_unchanged(admin_client: APIClient) -> None:
    response = admin_client.get("/api/v1/users/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


# --- PATCH /auth/me ---------------------------------------------------------------------------


def test_me_patch_ignores_email(user_client: APIClient, user: User) -> None:
    response = user_client.patch("/api/v1/auth/me", {"email": "new@example.com"}, format="json")
    assert response.status_code == 200
    assert (response.json()["email"], response.json()["name"]) == (user.email, user.name)
    user.refresh_from_db()
    assert user.email == "ursula@example.com"


@pytest.mark.parametrize("body", [{}, {"roles": ["admin"]}, {"is_active": False}])
def test_me_patch_without_a_name_changes_nothing(
    user_client: APIClient, user: User, body: dict[str, Any]
) -> None:
    before = user_client.get("/api/v1/auth/me").json()
    response = user_client.patch("/api/v1/auth/me", body, format="json")
    assert response.status_code == 200
    assert response.json() == before


# --- admin-made users -------------------------------------------------------------------------


def test_a_user_added_in_the_admin_holds_the_user_role(admin_user: User) -> None:
    operator = Client()
    operator.force_login(
        User.objects.create_superuser(email="op@example.com", name="Op", password="x")
    )
    password = "a long and unusual passphrase 42"
    response = operator.post(
        "/admin/users/user/add/",
        {
            "email": "added@example.com",
            "name": "Added",
            "password1": password,
            "password2": password,
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    added = User.objects.get(email="added@example.com")
    assert added.role_names == ["user"]
    login = APIClient().post(
        "/api/v1/auth/login", {"email": "added@example.com", "password": password}, format="json"
    )
    assert login.status_code == 200
    assert login.json()["user"]["roles"] == ["user"]
