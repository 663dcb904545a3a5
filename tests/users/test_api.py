"""Every /api/v1/users row of the contract: RBAC, validation, mass assignment."""

import uuid

import pytest
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.layered import every_mode
from users.models import SyncStatus, User

pytestmark = [pytest.mark.django_db, every_mode]

STRONG = "a long and unusual passphrase 42"


def url(user_or_id: User | str) -> str:
    pk = user_or_id.pk if isinstance(user_or_id, User) else user_or_id
    return f"/api/v1/users/{pk}"


# --- list -----------------------------------------------------------------------


def test_list_pages_are_zero_based(admin_client: APIClient, admin_user: User) -> None:
    created = [UserFactory.create() for _ in range(12)]
    first = admin_client.get("/api/v1/users?page=0&size=5").json()
    assert (first["page"], first["size"], first["total"]) == (0, 5, 13)
    assert [u["id"] for u in first["data"]] == [str(admin_user.pk)] + [
        str(u.pk) for u in created[:4]
    ]
    last = admin_client.get("/api/v1/users?page=2&size=5").json()
    assert len(last["data"]) == 3
    beyond = admin_client.get("/api/v1/users?page=9&size=5").json()
    assert beyond["data"] == []
    assert beyond["total"] == 13


def test_list_defaults(admin_client: APIClient) -> None:
    body = admin_client.get("/api/v1/users").json()
    assert (body["page"], body["size"]) == (0, 10)


def test_list_filters_and_search(admin_client: APIClient) -> None:
    UserFactory.create(name="Pending Pete", sync_status=SyncStatus.PENDING)
    UserFactory.create(name="Failed Fay", email="fay@failures.io", sync_status=SyncStatus.FAILED)
    pending = admin_client.get("/api/v1/users?sync_status=pending").json()
    assert [u["name"] for u in pending["data"]] == ["Pending Pete"]
    assert pending["total"] == 1
    by_email = admin_client.get("/api/v1/users?search=FAILURES").json()
    assert [u["name"] for u in by_email["data"]] == ["Failed Fay"]
    by_name = admin_client.get("/api/v1/users?search=pete").json()
    assert [u["name"] for u in by_name["data"]] == ["Pending Pete"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("size=0", "size"),
        ("size=101", "size"),
        ("size=ten", "size"),
        ("sync_status=bogus", "sync_status"),
    ],
)
def test_list_bad_query_is_400(admin_client: APIClient, query: str, field: str) -> None:
    response = admin_client.get(f"/api/v1/users?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_list_needs_admin(user_client: APIClient, anon_client: APIClient) -> None:
    assert user_client.get("/api/v1/users").status_code == 403
    assert user_client.get("/api/v1/users").json()["code"] == "permission_denied"
    assert anon_client.get("/api/v1/users").status_code == 401


def test_list_never_exposes_password(admin_client: APIClient) -> None:
    UserFactory.create()
    text = admin_client.get("/api/v1/users").content.decode()
    assert "password" not in text
    assert "argon2" not in text


# --- create ---------------------------------------------------------------------


def test_admin_creates_user_with_roles(admin_client: APIClient) -> None:
    response = admin_client.post(
        "/api/v1/users",
        {
            "name": "Made By Admin",
            "email": "Made@Example.com",
            "password": STRONG,
            "roles": ["admin"],
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "made@example.com"
    assert body["roles"] == ["admin"]
    assert "password" not in body


def test_admin_create_defaults_to_user_role(admin_client: APIClient) -> None:
    response = admin_client.post(
        "/api/v1/users",
        {"name": "Plain", "email": "plain@example.com", "password": STRONG},
        format="json",
    )
    assert response.json()["roles"] == ["user"]


def test_create_duplicate_is_409(admin_client: APIClient, user: User) -> None:
    response = admin_client.post(
        "/api/v1/users",
        {"name": "Dup", "email": "URSULA@example.com", "password": STRONG},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


def test_create_invalid_is_400(admin_client: APIClient) -> None:
    response = admin_client.post(
        "/api/v1/users",
        {"name": "", "email": "x", "password": "1", "roles": ["emperor"]},
        format="json",
    )
    assert response.status_code == 400
    assert {"name", "email", "password", "roles"} <= set(response.json()["errors"])


def test_create_needs_admin(user_client: APIClient, anon_client: APIClient) -> None:
    body = {"name": "X", "email": "x@example.com", "password": STRONG, "roles": ["admin"]}
    assert user_client.post("/api/v1/users", body, format="json").status_code == 403
    assert anon_client.post("/api/v1/users", body, format="json").status_code == 401
    assert not User.objects.filter(email="x@example.com").exists()


# --- retrieve -------------------------------------------------------------------


def test_user_reads_themself(user_client: APIClient, user: User) -> None:
    response = user_client.get(url(user))
    assert response.status_code == 200
    assert response.json()["email"] == user.email


def test_id_is_case_insensitive(user_client: APIClient, user: User) -> None:
    assert user_client.get(url(str(user.pk).upper())).status_code == 200


def test_user_cannot_see_someone_else(user_client: APIClient, other_user: User) -> None:
    response = user_client.get(url(other_user))
    assert response.status_code == 404
    # Indistinguishable from an id that does not exist.
    assert response.json() == user_client.get(url(str(uuid.uuid4()))).json()


def test_admin_reads_anyone(admin_client: APIClient, other_user: User) -> None:
    assert admin_client.get(url(other_user)).json()["id"] == str(other_user.pk)


@pytest.mark.parametrize("bad_id", ["garbage", "123", "0" * 40, "%00", "null"])
def test_malformed_id_is_404(admin_client: APIClient, bad_id: str) -> None:
    response = admin_client.get(url(bad_id))
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


def test_retrieve_needs_authentication(anon_client: APIClient, user: User) -> None:
    assert anon_client.get(url(user)).status_code == 401


# --- update ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_user_updates_own_name_and_email(user_client: APIClient, user: User, method: str) -> None:
    response = getattr(user_client, method)(
        url(user),
        {"name": "New Name", "email": "New.Mail@Example.com", "current_password": DEFAULT_PASSWORD},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["name"] == "New Name"
    assert response.json()["email"] == "new.mail@example.com"
    assert user_client.get(url(user)).json()["email"] == "new.mail@example.com"


@pytest.mark.parametrize(
    "payload",
    [{"roles": ["admin"]}, {"is_active": False}, {"sync_status": "failed"}],
)
def test_user_cannot_set_admin_fields(
    user_client: APIClient, user: User, payload: dict[str, object]
) -> None:
    response = user_client.patch(url(user), payload, format="json")
    assert response.status_code == 403
    user.refresh_from_db()
    assert user.role_names == ["user"]
    assert user.is_active
    assert user.sync_status == "synced"


def test_unknown_privileged_fields_are_ignored(user_client: APIClient, user: User) -> None:
    original_hash = user.password
    response = user_client.patch(
        url(user),
        {"is_staff": True, "is_superuser": True, "id": str(uuid.uuid4()), "password": "x" * 20},
        format="json",
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert not user.is_staff
    assert not user.is_superuser
    assert user.password == original_hash
    assert response.json()["id"] == str(user.pk)


def test_user_cannot_update_someone_else(user_client: APIClient, other_user: User) -> None:
    response = user_client.patch(url(other_user), {"name": "Hijacked"}, format="json")
    assert response.status_code == 404
    other_user.refresh_from_db()
    assert other_user.name == "Oscar Other"


def test_admin_updates_admin_fields(admin_client: APIClient, user: User) -> None:
    response = admin_client.patch(
        url(user),
        {"roles": ["user", "admin"], "is_active": False, "sync_status": "pending"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["roles"] == ["admin", "user"]
    assert body["is_active"] is False
    assert body["sync_status"] == "pending"


def test_update_to_taken_email_is_409(user_client: APIClient, user: User, other_user: User) -> None:
    response = user_client.patch(
        url(user),
        {"email": "OSCAR@example.com", "current_password": DEFAULT_PASSWORD},
        format="json",
    )
    assert response.status_code == 409
    user.refresh_from_db()
    assert user.email == "ursula@example.com"


def test_update_validation_is_400(user_client: APIClient, user: User) -> None:
    response = user_client.patch(url(user), {"name": "", "email": "bad"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "email"}


def test_create_and_update_check_the_email_as_it_will_be_stored(
    admin_client: APIClient, user: User
) -> None:
    """Found by tests/hardening: the length was checked before lower-casing,
    which lengthens "İ", so MySQL refused the row with a 500."""
    email = "İ" * 200 + "@example.com"
    body = {"name": "Long", "email": email, "password": STRONG}
    created = admin_client.post("/api/v1/users", body, format="json")
    updated = admin_client.patch(url(user), {"email": email}, format="json")
    for response in (created, updated):
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"email"}
    user.refresh_from_db()
    assert user.email == "ursula@example.com"
    assert User.objects.count() == 2  # user and admin, nobody new


def test_update_missing_is_404(admin_client: APIClient) -> None:
    assert (
        admin_client.patch(url(str(uuid.uuid4())), {"name": "x"}, format="json").status_code == 404
    )


def test_update_needs_authentication(anon_client: APIClient, user: User) -> None:
    assert anon_client.patch(url(user), {"name": "x"}, format="json").status_code == 401


# --- delete -----------------------------------------------------------------------


def test_admin_deletes_user(admin_client: APIClient, user: User) -> None:
    assert admin_client.get(url(user)).status_code == 200  # cached now
    assert admin_client.delete(url(user)).status_code == 204
    assert admin_client.get(url(user)).status_code == 404
    assert not User.objects.filter(pk=user.pk).exists()
    assert admin_client.delete(url(user)).status_code == 404


def test_delete_needs_admin(
    user_client: APIClient, anon_client: APIClient, user: User, other_user: User
) -> None:
    assert user_client.delete(url(other_user)).status_code == 403
    assert user_client.delete(url(user)).status_code == 403
    assert anon_client.delete(url(user)).status_code == 401
    assert User.objects.filter(pk__in=[user.pk, other_user.pk]).count() == 2


# --- stale reads ------------------------------------------------------------------


def test_no_stale_read_after_update(admin_client: APIClient, user: User) -> None:
    mine = client_for(user)
    assert mine.get(url(user)).json()["name"] == "Ursula User"  # fills the cache
    admin_client.patch(url(user), {"name": "Changed By Admin"}, format="json")
    assert mine.get(url(user)).json()["name"] == "Changed By Admin"
    assert mine.get("/api/v1/auth/me").json()["name"] == "Changed By Admin"


def test_fast_renderer_matches_the_documented_serializer(user: User) -> None:
    from users import repository
    from users.api.serializers import UserOutputSerializer, user_json

    record = repository.user_get(user_id=str(user.pk))
    assert user_json(record) == dict(UserOutputSerializer(record).data)
