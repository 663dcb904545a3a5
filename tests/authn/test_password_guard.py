"""POST /auth/password: throttled per user and per client address, and a
wrong current password counts like a failed login."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import client_for, tokens_for
from tests.factories import DEFAULT_PASSWORD, UserFactory
from users.models import User

pytestmark = pytest.mark.django_db

STRONG = "an entirely new passphrase 77"
RATES = {"password": "3/min", "login": "1000/min"}


def _change(client: APIClient, current: str, new: str = STRONG) -> int:
    return client.post(
        "/api/v1/auth/password", {"current_password": current, "new_password": new}, format="json"
    ).status_code


def _with_address(user: User, address: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user).access}")
    return client


@override_settings(THROTTLE_RATES=RATES)
def test_guesses_are_throttled_per_user_across_addresses(user: User) -> None:
    codes = [_change(_with_address(user, f"10.8.0.{i}"), f"guess number {i}") for i in range(4)]
    assert codes == [400, 400, 400, 429]
    response = _with_address(user, "10.8.1.1").post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": STRONG},
        format="json",
    )
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1


@override_settings(THROTTLE_RATES=RATES)
def test_guesses_are_throttled_per_address_across_users() -> None:
    users = [UserFactory.create() for _ in range(4)]
    codes = [_change(_with_address(user, "10.9.0.1"), "not my password") for user in users]
    assert codes == [400, 400, 400, 429]
    # Another address, another user: unaffected.
    assert _change(_with_address(UserFactory.create(), "10.9.0.2"), DEFAULT_PASSWORD) == 204


@override_settings(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_wrong_current_passwords_count_as_failed_logins(user: User) -> None:
    client = _with_address(user, "10.10.0.1")
    assert [_change(client, f"guess {i} at it") for i in range(3)] == [400, 400, 400]
    # Locked now, from that address: the right password no longer helps ...
    assert _change(client, DEFAULT_PASSWORD) == 429
    login = {"email": user.email, "password": DEFAULT_PASSWORD}
    locked = APIClient(REMOTE_ADDR="10.10.0.1").post("/api/v1/auth/login", login, format="json")
    assert locked.status_code == 429
    # ... while the owner elsewhere is not locked out.
    assert (
        APIClient(REMOTE_ADDR="10.10.0.2")
        .post("/api/v1/auth/login", login, format="json")
        .status_code
        == 200
    )
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_a_correct_change_is_not_counted_as_a_failure(user: User) -> None:
    assert _change(client_for(user), DEFAULT_PASSWORD) == 204
    user.refresh_from_db()
    assert user.check_password(STRONG)
