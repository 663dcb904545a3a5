"""Login, register and refresh are rate limited per client: 429 + Retry-After."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import tokens_for
from users.models import User

pytestmark = pytest.mark.django_db

LOW = {"login": "2/min", "register": "2/min", "refresh": "2/min"}


@override_settings(THROTTLE_RATES=LOW)
def test_login_is_throttled(anon_client: APIClient) -> None:
    body = {"email": "who@example.com", "password": "whatever-123"}
    codes = [
        anon_client.post("/api/v1/auth/login", body, format="json").status_code for _ in range(3)
    ]
    assert codes == [401, 401, 429]
    response = anon_client.post("/api/v1/auth/login", body, format="json")
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


@override_settings(THROTTLE_RATES=LOW)
def test_register_is_throttled_and_writes_nothing(anon_client: APIClient) -> None:
    codes = [
        anon_client.post(
            "/api/v1/auth/register",
            {
                "name": "N",
                "email": f"n{i}@example.com",
                "password": "a long and unusual passphrase 42",
            },
            format="json",
        ).status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]
    assert not User.objects.filter(email="n2@example.com").exists()


@override_settings(THROTTLE_RATES=LOW)
def test_refresh_is_throttled(anon_client: APIClient, user: User) -> None:
    codes = [
        anon_client.post(
            "/api/v1/auth/refresh", {"refresh": tokens_for(user).refresh}, format="json"
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]


@override_settings(THROTTLE_RATES=LOW)
def test_throttle_is_per_client_address(user: User) -> None:
    body = {"email": "who@example.com", "password": "whatever-123"}
    first, second = APIClient(REMOTE_ADDR="10.0.0.1"), APIClient(REMOTE_ADDR="10.0.0.2")
    for _ in range(2):
        first.post("/api/v1/auth/login", body, format="json")
    assert first.post("/api/v1/auth/login", body, format="json").status_code == 429
    assert second.post("/api/v1/auth/login", body, format="json").status_code == 401


@override_settings(THROTTLE_RATES=LOW)
def test_authenticated_endpoints_are_not_throttled(user_client: APIClient) -> None:
    assert all(user_client.get("/api/v1/auth/me").status_code == 200 for _ in range(5))
