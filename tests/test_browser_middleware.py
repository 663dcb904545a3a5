"""The API skips the middleware that only browser sessions need; the admin keeps it."""

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from arcana import middleware
from users.models import User

BROWSER_ONLY = (
    middleware.SessionMiddleware,
    middleware.AuthenticationMiddleware,
    middleware.MessageMiddleware,
)


def _chain(seen: list[dict[str, bool]]) -> middleware.GetResponse:
    handler: middleware.GetResponse

    def view(request: HttpRequest) -> HttpResponse:
        seen.append({name: hasattr(request, name) for name in ("session", "user", "_messages")})
        return HttpResponse(b"ok")

    handler = view
    for cls in reversed(BROWSER_ONLY):
        handler = cls(handler)  # type: ignore[assignment]  # sync here: WSGI
    return handler


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/users", False),
        ("/api/v1/auth/login", False),
        ("/admin/login/", True),
        ("/api/docs", True),  # a staff session may open the docs
        ("/api/v1x", True),
    ],
)
def test_only_browser_pages_get_a_session_a_user_and_messages(path: str, expected: bool) -> None:
    seen: list[dict[str, bool]] = []
    _chain(seen)(RequestFactory().get(path))
    assert seen == [{"session": expected, "user": expected, "_messages": expected}]


@pytest.mark.django_db
def test_the_api_sets_no_cookie_and_ignores_an_admin_session(
    admin_user: User, operator: Client
) -> None:
    # A signed-in admin-site session is no credential for the API (it never was).
    client = APIClient()
    client.cookies = operator.cookies
    response = client.get("/api/v1/users")
    assert response.status_code == 401
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


@pytest.mark.django_db
def test_the_admin_still_signs_in_with_csrf_and_a_session() -> None:
    admin = User.objects.create_superuser(
        email="op@example.com", name="Operator", password="a long and unusual passphrase 42"
    )
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/admin/login/")
    token = page.cookies["csrftoken"].value
    refused = browser.post("/admin/login/", {"username": admin.email, "password": "wrong"})
    assert refused.status_code == 403  # no CSRF token: the CSRF middleware still runs
    signed_in = browser.post(
        "/admin/login/",
        {
            "username": admin.email,
            "password": "a long and unusual passphrase 42",
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
    )
    assert signed_in.status_code == 302
    assert "sessionid" in signed_in.cookies
    assert browser.get("/admin/").status_code == 200
