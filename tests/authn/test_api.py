"""Every /api/v1/auth row of the contract, through DRF's APIClient."""

from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from rest_framework.test import APIClient

from authn.models import RefreshToken
from tests.conftest import client_for, decode_access, tokens_for
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.layered import every_mode
from users.models import Role, User

pytestmark = [pytest.mark.django_db, every_mode]

USER_KEYS = {
    "id",
    "name",
    "email",
    "roles",
    "sync_status",
    "is_active",
    "email_verified",
    "created_at",
    "updated_at",
}
STRONG = "a long and unusual passphrase 42"


def register(client: APIClient, **overrides: object):
    body = {"name": "New Person", "email": "new@example.com", "password": STRONG, **overrides}
    return client.post("/api/v1/auth/register", body, format="json")


def login(client: APIClient, email: str, password: str):
    return client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")


# --- register -------------------------------------------------------------------


def test_register_creates_user_and_returns_tokens(anon_client: APIClient) -> None:
    response = register(anon_client, email="  New.Person@Example.COM ")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    assert set(body["user"]) == USER_KEYS
    assert body["user"]["email"] == "new.person@example.com"
    assert body["user"]["roles"] == ["user"]
    assert body["user"]["sync_status"] == "synced"
    assert body["user"]["created_at"].endswith("Z") or "+00:00" in body["user"]["created_at"]
    me = client_for(token=body["access"]).get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]


def test_register_hashes_password_with_argon2(anon_client: APIClient) -> None:
    register(anon_client)
    stored = User.objects.get(email="new@example.com").password
    assert stored.startswith("argon2$argon2id$")
    assert STRONG not in stored


def test_register_duplicate_email_in_another_case_is_409(
    anon_client: APIClient, user: User
) -> None:
    response = register(anon_client, email="URSULA@Example.com")
    assert response.status_code == 409
    assert response.json() == {
        "error": "A user with this email already exists.",
        "code": "email_taken",
    }
    assert User.objects.filter(email="ursula@example.com").count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 256),
        ("email", "not-an-email"),
        ("email", "a" * 250 + "@example.com"),
        ("password", "short1!"),
        ("password", "password123"),
        ("password", "12345678901"),
    ],
)
def test_register_rejects_bad_fields_with_field_errors(
    anon_client: APIClient, field: str, value: str
) -> None:
    response = register(anon_client, **{field: value})
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not User.objects.filter(email="new@example.com").exists()


# Lower-casing "İ" gives two code points: 200 of them fit the 254-character limit
# as sent but not as stored (a 500 from MySQL's strict mode), and a single one
# leaves an address that is no longer valid. Both found by tests/hardening.
@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("İ" * 200 + "@example.com", "Ensure this field has no more than 254 characters."),
        ("İ@example.com", "Enter a valid email address."),
    ],
)
def test_register_checks_the_email_as_it_will_be_stored(
    anon_client: APIClient, email: str, message: str
) -> None:
    response = register(anon_client, email=email)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"email"}
    assert message in response.json()["errors"]["email"]
    assert not User.objects.exists()


def test_register_rejects_password_similar_to_email(anon_client: APIClient) -> None:
    response = register(anon_client, email="stardust.maker@example.com", password="stardustmaker")
    assert response.status_code == 400
    assert "password" in response.json()["errors"]


def test_register_missing_fields(anon_client: APIClient) -> None:
    response = anon_client.post("/api/v1/auth/register", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "email", "password"}


def test_register_accepts_long_passphrase_whole(anon_client: APIClient) -> None:
    passphrase = "the quick brown fox jumps over the lazy dog " * 3 + "tail-end-matters"
    assert len(passphrase) > 128
    assert register(anon_client, password=passphrase).status_code == 201
    assert login(anon_client, "new@example.com", passphrase).status_code == 200
    # Nothing is truncated: the same prefix without its tail is a wrong password.
    assert login(anon_client, "new@example.com", passphrase[:-1]).status_code == 401


def test_register_ignores_privileged_fields(anon_client: APIClient) -> None:
    response = register(anon_client, roles=["admin"], is_staff=True, is_superuser=True, id="0" * 32)
    assert response.status_code == 201
    assert response.json()["user"]["roles"] == ["user"]
    created = User.objects.get(email="new@example.com")
    assert not created.is_staff
    assert not created.is_superuser
    assert str(created.pk) != "0" * 32


# --- login ----------------------------------------------------------------------


def test_login_returns_tokens_and_user(anon_client: APIClient, user: User) -> None:
    response = login(anon_client, "Ursula@Example.com", DEFAULT_PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "user"}
    assert body["user"]["id"] == str(user.pk)
    assert "password" not in body["user"]


def test_login_unknown_email_and_wrong_password_look_the_same(
    anon_client: APIClient, user: User
) -> None:
    wrong = login(anon_client, "ursula@example.com", "not the password")
    unknown = login(anon_client, "nobody@example.com", "not the password")
    malformed = login(anon_client, "not an email", "whatever")
    assert wrong.status_code == unknown.status_code == malformed.status_code == 401
    assert wrong.json() == unknown.json() == malformed.json()
    assert wrong.json()["code"] == "invalid_credentials"


def test_login_inactive_user_is_refused_like_bad_credentials(anon_client: APIClient) -> None:
    UserFactory.create(email="gone@example.com", is_active=False)
    response = login(anon_client, "gone@example.com", DEFAULT_PASSWORD)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


@pytest.mark.parametrize("via", ["api", "admin"])
def test_login_upgrades_an_outdated_hash_and_ends_no_session(
    user: User, settings: Any, django_capture_on_commit_callbacks: Any, via: str
) -> None:
    """Django's hash upgrade, now done by the users service: a correct password
    stored with an old hasher is re-hashed with the preferred one; the
    password is the same, so the user's sessions live on."""
    settings.PASSWORD_HASHERS = [
        "tests.hashers.FastArgon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    old_hash = make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    User.objects.filter(pk=user.pk).update(password=old_hash)
    session = tokens_for(user)
    with django_capture_on_commit_callbacks(execute=True):
        if via == "api":
            assert login(APIClient(), user.email, DEFAULT_PASSWORD).status_code == 200
        else:
            assert Client().login(username=user.email, password=DEFAULT_PASSWORD) is True
    user.refresh_from_db()
    assert user.password.startswith("argon2$")
    assert user.check_password(DEFAULT_PASSWORD)
    refreshed = APIClient().post(
        "/api/v1/auth/refresh", {"refresh": session.refresh}, format="json"
    )
    assert refreshed.status_code == 200


def test_a_wrong_password_upgrades_nothing(user: User, settings: Any) -> None:
    settings.PASSWORD_HASHERS = [
        "tests.hashers.FastArgon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    old_hash = make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
    User.objects.filter(pk=user.pk).update(password=old_hash)
    assert login(APIClient(), user.email, "not the password at all").status_code == 401
    user.refresh_from_db()
    assert user.password == old_hash


def test_login_missing_password_is_400(anon_client: APIClient) -> None:
    response = anon_client.post("/api/v1/auth/login", {"email": "a@b.c"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()["errors"]


# --- refresh --------------------------------------------------------------------


def test_refresh_rotates_and_kills_the_old_token(anon_client: APIClient, user: User) -> None:
    pair = tokens_for(user)
    response = anon_client.post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert body["refresh"] != pair.refresh
    newer = anon_client.post("/api/v1/auth/refresh", {"refresh": body["refresh"]}, format="json")
    assert newer.status_code == 200
    again = anon_client.post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json")
    assert again.status_code == 401
    assert again.json()["code"] == "token_not_valid"
    # What a replay does to the rest of the chain: tests/authn/test_refresh_reuse.py.


def test_refresh_with_access_token_is_401(anon_client: APIClient, user: User) -> None:
    pair = tokens_for(user)
    response = anon_client.post("/api/v1/auth/refresh", {"refresh": pair.access}, format="json")
    assert response.status_code == 401


def test_refresh_garbage_is_401(anon_client: APIClient) -> None:
    response = anon_client.post("/api/v1/auth/refresh", {"refresh": "abc.def.ghi"}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_refresh_for_deactivated_user_is_401(anon_client: APIClient, user: User) -> None:
    pair = tokens_for(user)
    user.is_active = False
    user.save()
    response = anon_client.post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json")
    assert response.status_code == 401


def test_refresh_for_deleted_user_is_401(anon_client: APIClient, user: User) -> None:
    """The token table keeps a plain user id, no foreign key: the row outlives
    the user, and the refresh-time check is what refuses it."""
    pair = tokens_for(user)
    user_id = str(user.pk)
    user.delete()
    assert RefreshToken.objects.filter(user_id=user_id).exists()
    response = anon_client.post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json")
    assert response.status_code == 401


def test_refresh_carries_current_roles(anon_client: APIClient, user: User) -> None:
    pair = tokens_for(user)
    user.roles.add(Role.objects.get(name="admin"))
    body = anon_client.post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json").json()
    assert decode_access(body["access"])["roles"] == ["admin", "user"]


# --- logout -----------------------------------------------------------------------


def test_logout_kills_that_refresh_token_only(user: User) -> None:
    first, second = tokens_for(user), tokens_for(user)
    client = client_for(token=first.access)
    assert (
        client.post("/api/v1/auth/logout", {"refresh": first.refresh}, format="json").status_code
        == 204
    )
    anon = APIClient()
    assert (
        anon.post("/api/v1/auth/refresh", {"refresh": first.refresh}, format="json").status_code
        == 401
    )
    assert (
        anon.post("/api/v1/auth/refresh", {"refresh": second.refresh}, format="json").status_code
        == 200
    )


def test_logout_requires_authentication(anon_client: APIClient, user: User) -> None:
    pair = tokens_for(user)
    response = anon_client.post("/api/v1/auth/logout", {"refresh": pair.refresh}, format="json")
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]


def test_logout_someone_elses_refresh_token_is_refused(user: User, other_user: User) -> None:
    theirs = tokens_for(other_user)
    response = client_for(user).post(
        "/api/v1/auth/logout", {"refresh": theirs.refresh}, format="json"
    )
    assert response.status_code == 401
    still = APIClient().post("/api/v1/auth/refresh", {"refresh": theirs.refresh}, format="json")
    assert still.status_code == 200


def test_logout_all_kills_every_refresh_token(user: User, other_user: User) -> None:
    pairs = [tokens_for(user) for _ in range(3)]
    bystander = tokens_for(other_user)
    assert client_for(token=pairs[0].access).post("/api/v1/auth/logout-all").status_code == 204
    anon = APIClient()
    for pair in pairs:
        assert (
            anon.post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json").status_code
            == 401
        )
    assert (
        anon.post("/api/v1/auth/refresh", {"refresh": bystander.refresh}, format="json").status_code
        == 200
    )


def test_logout_all_requires_authentication(anon_client: APIClient) -> None:
    assert anon_client.post("/api/v1/auth/logout-all").status_code == 401


# --- me -------------------------------------------------------------------------


def test_me_returns_the_caller(user_client: APIClient, user: User) -> None:
    body = user_client.get("/api/v1/auth/me").json()
    assert body["id"] == str(user.pk)
    assert set(body) == USER_KEYS


def test_me_requires_authentication(anon_client: APIClient) -> None:
    response = anon_client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_me_patch_changes_name_only(user_client: APIClient, user: User) -> None:
    response = user_client.patch(
        "/api/v1/auth/me",
        {"name": "Ursula Renamed", "email": "x@example.com", "roles": ["admin"]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Ursula Renamed"
    assert response.json()["email"] == "ursula@example.com"
    assert response.json()["roles"] == ["user"]
    assert user_client.get("/api/v1/auth/me").json()["name"] == "Ursula Renamed"


def test_me_patch_blank_name_is_400(user_client: APIClient) -> None:
    response = user_client.patch("/api/v1/auth/me", {"name": "   "}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


# --- password -----------------------------------------------------------------------


def test_password_change_keeps_this_session_and_ends_others(
    user: User, django_capture_on_commit_callbacks: Any
) -> None:
    mine, other_session = tokens_for(user), tokens_for(user)
    client = client_for(token=mine.access)
    # The sessions end when the change commits (users.signals.password_changed).
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/auth/password",
            {"current_password": DEFAULT_PASSWORD, "new_password": STRONG},
            format="json",
        )
    assert response.status_code == 204
    anon = APIClient()
    assert login(anon, user.email, DEFAULT_PASSWORD).status_code == 401
    assert login(anon, user.email, STRONG).status_code == 200
    assert (
        anon.post(
            "/api/v1/auth/refresh", {"refresh": other_session.refresh}, format="json"
        ).status_code
        == 401
    )
    assert (
        anon.post("/api/v1/auth/refresh", {"refresh": mine.refresh}, format="json").status_code
        == 200
    )


def test_password_change_keeps_the_callers_session_after_its_client_rotated(
    user: User, django_capture_on_commit_callbacks: Any
) -> None:
    """The access token still names the refresh token it came from, which the
    client has since rotated: the session (its family) is what survives."""
    mine, other_session = tokens_for(user), tokens_for(user)
    anon = APIClient()
    rotated = anon.post("/api/v1/auth/refresh", {"refresh": mine.refresh}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(token=mine.access).post(
            "/api/v1/auth/password",
            {"current_password": DEFAULT_PASSWORD, "new_password": STRONG},
            format="json",
        )
    assert response.status_code == 204
    refresh = "/api/v1/auth/refresh"
    assert anon.post(refresh, {"refresh": rotated["refresh"]}, format="json").status_code == 200
    assert anon.post(refresh, {"refresh": other_session.refresh}, format="json").status_code == 401


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_password_change_ends_the_other_sessions_on_a_real_commit(user: User) -> None:
    """No captured callbacks: the request commits and the signal fires for real."""
    mine, other_session = tokens_for(user), tokens_for(user)
    response = client_for(token=mine.access).post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": STRONG},
        format="json",
    )
    assert response.status_code == 204
    anon = APIClient()
    refresh = "/api/v1/auth/refresh"
    assert anon.post(refresh, {"refresh": other_session.refresh}, format="json").status_code == 401
    assert anon.post(refresh, {"refresh": mine.refresh}, format="json").status_code == 200


def test_password_change_needs_the_current_password(user_client: APIClient, user: User) -> None:
    response = user_client.post(
        "/api/v1/auth/password",
        {"current_password": "wrong wrong wrong", "new_password": STRONG},
        format="json",
    )
    assert response.status_code == 400
    assert "current_password" in response.json()["errors"]
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize("new_password", ["short", "password", DEFAULT_PASSWORD])
def test_password_change_applies_the_policy(user_client: APIClient, new_password: str) -> None:
    response = user_client.post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": new_password},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["new_password"]


def test_password_change_requires_authentication(anon_client: APIClient) -> None:
    response = anon_client.post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": STRONG},
        format="json",
    )
    assert response.status_code == 401
