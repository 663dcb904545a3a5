"""Lockout after failed credential checks: per (account, client address), an
account-wide ceiling, shared by the API (both protocols) and the admin login,
lifted by the admin's "unlock" action."""

import time

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.factories import UserFactory
from users.models import User

pytestmark = pytest.mark.django_db

WRONG = "wrong password!"
ADMIN_LOGIN = "/admin/login/"


def _login(client: APIClient, email: str, password: str) -> int:
    return client.post(
        "/api/v1/auth/login", {"email": email, "password": password}, format="json"
    ).status_code


def _admin_login(client: Client, email: str, password: str) -> bool:
    """Whether the admin login form logged the client in."""
    response = client.post(
        ADMIN_LOGIN, {"username": email, "password": password, "next": "/admin/"}
    )
    return response.status_code == 302 and "_auth_user_id" in client.session


@override_settings(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_attacker_locks_only_their_own_address(user: User, password: str) -> None:
    attacker, owner = APIClient(REMOTE_ADDR="10.1.0.1"), APIClient(REMOTE_ADDR="10.1.0.2")
    assert [_login(attacker, user.email, WRONG) for _ in range(3)] == [401, 401, 401]
    response = attacker.post(
        "/api/v1/auth/login", {"email": user.email, "password": password}, format="json"
    )
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    # The owner, from their own address, still gets in.
    assert _login(owner, "  URSULA@example.com ", password) == 200


@override_settings(
    LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_ACCOUNT_FAILURES=4, LOGIN_LOCKOUT_SECONDS=60
)
def test_account_wide_ceiling_stops_a_botnet(user: User, password: str) -> None:
    bots = [APIClient(REMOTE_ADDR=f"10.2.0.{i}") for i in range(4)]
    assert [_login(bot, user.email, WRONG) for bot in bots] == [401] * 4
    assert _login(APIClient(REMOTE_ADDR="10.2.1.1"), user.email, password) == 429
    # Other accounts are unaffected.
    other = UserFactory.create()
    assert _login(APIClient(REMOTE_ADDR="10.2.1.1"), other.email, password) == 200


@override_settings(LOGIN_LOCKOUT_FAILURES=2, LOGIN_LOCKOUT_SECONDS=1)
def test_lock_expires(user: User, password: str) -> None:
    client = APIClient()
    assert [_login(client, user.email, WRONG) for _ in range(2)] == [401, 401]
    assert _login(client, user.email, password) == 429
    time.sleep(1.2)
    assert _login(client, user.email, password) == 200


@override_settings(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_success_resets_the_failure_count(user: User, password: str) -> None:
    client = APIClient()
    for _ in range(2):
        assert _login(client, user.email, WRONG) == 401
    assert _login(client, user.email, password) == 200
    for _ in range(2):
        assert _login(client, user.email, WRONG) == 401
    assert _login(client, user.email, password) == 200


@override_settings(LOGIN_LOCKOUT_FAILURES=2, LOGIN_LOCKOUT_SECONDS=60)
def test_unknown_email_locks_like_a_real_one(anon_client: APIClient) -> None:
    codes = [_login(anon_client, "ghost@example.com", WRONG) for _ in range(3)]
    assert codes == [401, 401, 429]


@override_settings(
    LOGIN_LOCKOUT_FAILURES=2, LOGIN_LOCKOUT_ACCOUNT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600
)
def test_operator_unlocks_an_account(user: User, password: str) -> None:
    client = APIClient(REMOTE_ADDR="10.3.0.1")
    for address in ("10.3.0.1", "10.3.0.1", "10.3.0.2"):
        _login(APIClient(REMOTE_ADDR=address), user.email, WRONG)
    assert _login(client, user.email, password) == 429  # both locks are on
    operator = Client()
    operator.force_login(UserFactory.create(admin=True, is_staff=True, is_superuser=True))
    response = operator.post(
        "/admin/users/user/", {"action": "unlock_login", "_selected_action": [str(user.pk)]}
    )
    assert response.status_code == 302
    assert _login(client, user.email, password) == 200
    # The counts are forgotten too: a fresh budget of failures.
    assert _login(client, user.email, WRONG) == 401
    assert _login(client, user.email, password) == 200


# --- the Django admin login -------------------------------------------------------------


@pytest.fixture
def superuser(db: object, password: str) -> User:
    return UserFactory.create(
        email="root@example.com", admin=True, is_staff=True, is_superuser=True, password=password
    )


def test_admin_login_normalises_the_email_like_the_api(superuser: User, password: str) -> None:
    client = Client()
    assert _admin_login(client, "  ROOT@Example.COM ", password)
    superuser.refresh_from_db()
    assert superuser.last_login is not None


def test_admin_login_refuses_after_repeated_failures(superuser: User, password: str) -> None:
    client = Client()
    assert not any(_admin_login(client, superuser.email, WRONG) for _ in range(20))
    response = client.post(ADMIN_LOGIN, {"username": superuser.email, "password": password})
    assert "_auth_user_id" not in client.session
    assert "Too many failed attempts" in response.content.decode()


@override_settings(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_admin_failures_lock_the_api_login(superuser: User, password: str) -> None:
    for _ in range(3):
        assert not _admin_login(Client(REMOTE_ADDR="10.4.0.1"), superuser.email, WRONG)
    assert _login(APIClient(REMOTE_ADDR="10.4.0.1"), superuser.email, password) == 429
    assert _login(APIClient(REMOTE_ADDR="10.4.0.2"), superuser.email, password) == 200


@override_settings(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_api_failures_lock_the_admin_login(superuser: User, password: str) -> None:
    for _ in range(3):
        assert _login(APIClient(REMOTE_ADDR="10.5.0.1"), superuser.email, WRONG) == 401
    assert not _admin_login(Client(REMOTE_ADDR="10.5.0.1"), superuser.email, password)
    assert _admin_login(Client(REMOTE_ADDR="10.5.0.2"), superuser.email, password)


@override_settings(THROTTLE_RATES={"login": "2/min"})
def test_admin_login_shares_the_api_login_throttle(superuser: User, password: str) -> None:
    assert _login(APIClient(REMOTE_ADDR="10.6.0.1"), "nobody@example.com", WRONG) == 401
    assert _login(APIClient(REMOTE_ADDR="10.6.0.1"), "nobody@example.com", WRONG) == 401
    client = Client(REMOTE_ADDR="10.6.0.1")
    response = client.post(ADMIN_LOGIN, {"username": superuser.email, "password": password})
    assert "_auth_user_id" not in client.session
    assert "Too many login attempts" in response.content.decode()


# --- the API login on both protocols ----------------------------------------------------


def test_api_login_sets_last_login(user: User, password: str) -> None:
    assert user.last_login is None
    assert _login(APIClient(), user.email, password) == 200
    user.refresh_from_db()
    assert user.last_login is not None


def test_token_responses_are_never_stored(user: User, password: str) -> None:
    client = APIClient()
    login = client.post(
        "/api/v1/auth/login", {"email": user.email, "password": password}, format="json"
    )
    refreshed = client.post(
        "/api/v1/auth/refresh", {"refresh": login.json()["refresh"]}, format="json"
    )
    registered = client.post(
        "/api/v1/auth/register",
        {"name": "New", "email": "new@example.com", "password": "a long and unusual passphrase"},
        format="json",
    )
    for response in (login, refreshed, registered):
        assert response.status_code in (200, 201)
        assert response["Cache-Control"] == "no-store"
    assert "no-store" not in client_for(user).get("/api/v1/auth/me").get("Cache-Control", "")
