"""arcana.v1.UserService over a real channel: every RPC and every status."""

import grpc
import pytest

from arcana.grpc.errors import ERROR_CODE_KEY, field_errors
from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.grpc.conftest import auth_for, rpc_error, trailer
from tests.layered import every_mode
from users.models import SyncStatus, User

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), every_mode]

STRONG = "a long and unusual passphrase 42"


# --- GetUser --------------------------------------------------------------------------


def test_get_self(users_stub: UserServiceStub, user: User) -> None:
    reply = users_stub.GetUser(users_pb2.GetUserRequest(id=str(user.pk)), metadata=auth_for(user))
    assert (reply.id, reply.name, reply.email) == (str(user.pk), user.name, user.email)
    assert list(reply.roles) == ["user"]
    assert reply.sync_status == "synced"
    assert reply.is_active is True
    assert reply.created_at == int(user.created_at.timestamp() * 1000)
    assert reply.updated_at >= reply.created_at


def test_admin_gets_anyone(users_stub: UserServiceStub, admin_user: User, user: User) -> None:
    request = users_pb2.GetUserRequest(id=str(user.pk))
    assert users_stub.GetUser(request, metadata=auth_for(admin_user)).email == user.email


# A fixed id nobody holds, not uuid4(): parameter ids must not change between runs.
NOBODY = "5f0c7a3e-9b1d-4c2e-8f6a-1d2b3c4d5e6f"


@pytest.mark.parametrize("user_id", ["someone-else", NOBODY, "not-a-uuid", ""])
def test_get_not_found(
    users_stub: UserServiceStub, user: User, other_user: User, user_id: str
) -> None:
    """Someone else's id, a missing id and a malformed id are all NOT_FOUND."""
    if user_id == "someone-else":
        user_id = str(other_user.pk)
    error = rpc_error(
        users_stub.GetUser, users_pb2.GetUserRequest(id=user_id), metadata=auth_for(user)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert trailer(error, ERROR_CODE_KEY) == "user_not_found"


def test_get_without_token(users_stub: UserServiceStub, user: User) -> None:
    error = rpc_error(users_stub.GetUser, users_pb2.GetUserRequest(id=str(user.pk)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# --- ListUsers ------------------------------------------------------------------------


def test_list_pages_and_filters(users_stub: UserServiceStub, admin_user: User) -> None:
    UserFactory.create_batch(3)
    UserFactory(name="Zed Quixotry", sync_status=SyncStatus.PENDING)
    metadata = auth_for(admin_user)

    first = users_stub.ListUsers(users_pb2.ListUsersRequest(), metadata=metadata)
    assert (first.total, first.page, first.size, len(first.users)) == (5, 0, 10, 5)

    second = users_stub.ListUsers(users_pb2.ListUsersRequest(page=1, size=2), metadata=metadata)
    assert (second.total, second.page, second.size, len(second.users)) == (5, 1, 2, 2)

    pending = users_stub.ListUsers(
        users_pb2.ListUsersRequest(sync_status="pending"), metadata=metadata
    )
    assert [u.name for u in pending.users] == ["Zed Quixotry"]

    found = users_stub.ListUsers(users_pb2.ListUsersRequest(search="QUIXOTRY"), metadata=metadata)
    assert found.total == 1


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"page": -1}, "page"),
        ({"sync_status": "bogus"}, "sync_status"),
    ],
)
def test_list_rejects_bad_query(
    users_stub: UserServiceStub, admin_user: User, request_fields: dict[str, object], field: str
) -> None:
    error = rpc_error(
        users_stub.ListUsers,
        users_pb2.ListUsersRequest(**request_fields),  # type: ignore[arg-type]
        metadata=auth_for(admin_user),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_errors(error.trailing_metadata())) == {field}
    assert field in (error.details() or "")


def test_list_needs_admin(users_stub: UserServiceStub, user: User) -> None:
    error = rpc_error(users_stub.ListUsers, users_pb2.ListUsersRequest(), metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_list_by_cursor_walks_every_user_once(
    users_stub: UserServiceStub, admin_user: User
) -> None:
    UserFactory.create_batch(4, sync_status=SyncStatus.PENDING)
    UserFactory.create_batch(2)
    metadata = auth_for(admin_user)
    first = users_stub.ListUsers(users_pb2.ListUsersRequest(size=2), metadata=metadata)
    assert first.HasField("total")
    assert first.HasField("next_cursor")
    assert not first.total_is_estimate
    seen = [u.id for u in first.users]
    page = first
    while page.HasField("next_cursor"):
        UserFactory.create()  # arriving while the client walks: seen at the end
        request = users_pb2.ListUsersRequest(size=2, cursor=page.next_cursor)
        page = users_stub.ListUsers(request, metadata=metadata)
        assert not page.HasField("total")
        assert not page.HasField("page")
        seen += [u.id for u in page.users]
    expected = User.objects.order_by("created_at", "id").values_list("pk", flat=True)
    assert seen == [str(pk) for pk in expected]

    pending = users_pb2.ListUsersRequest(size=3, sync_status="pending", is_active=True)
    one = users_stub.ListUsers(pending, metadata=metadata)
    pending.cursor = one.next_cursor
    two = users_stub.ListUsers(pending, metadata=metadata)
    assert len(one.users) + len(two.users) == 4
    assert not two.HasField("next_cursor")


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"search": "else"}, "cursor_filter_mismatch"),
        ({"is_active": False}, "cursor_filter_mismatch"),
        ({"page": 0}, "cursor_with_page"),
        ({"tamper": True}, "invalid_cursor"),
    ],
)
def test_list_refuses_a_cursor_out_of_place(
    users_stub: UserServiceStub, admin_user: User, request_fields: dict[str, object], code: str
) -> None:
    UserFactory.create_batch(2)
    metadata = auth_for(admin_user)
    cursor = users_stub.ListUsers(users_pb2.ListUsersRequest(size=1), metadata=metadata).next_cursor
    request_fields = dict(request_fields)  # the parameter is shared by every mode's run
    if request_fields.pop("tamper", False):
        cursor = cursor[:5] + ("x" if cursor[5] != "x" else "y") + cursor[6:]
    request = users_pb2.ListUsersRequest(size=1, cursor=cursor, **request_fields)  # type: ignore[arg-type]
    error = rpc_error(users_stub.ListUsers, request, metadata=metadata)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailer(error, ERROR_CODE_KEY) == code


def test_list_caps_offset_pages(users_stub: UserServiceStub, admin_user: User) -> None:
    metadata = auth_for(admin_user)
    at_the_cap = users_stub.ListUsers(
        users_pb2.ListUsersRequest(page=500, size=20), metadata=metadata
    )
    assert list(at_the_cap.users) == []
    error = rpc_error(
        users_stub.ListUsers, users_pb2.ListUsersRequest(page=501, size=20), metadata=metadata
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailer(error, ERROR_CODE_KEY) == "page_too_deep"
    assert "next_cursor" in (error.details() or "")


# --- CreateUser -----------------------------------------------------------------------


def test_create(users_stub: UserServiceStub, admin_user: User) -> None:
    request = users_pb2.CreateUserRequest(name="New", email="New@Example.com", password=STRONG)
    reply = users_stub.CreateUser(request, metadata=auth_for(admin_user))
    assert reply.email == "new@example.com"
    assert list(reply.roles) == ["user"]  # unset roles: the default
    assert User.objects.get(pk=reply.id).check_password(STRONG)


def test_create_with_explicit_roles(users_stub: UserServiceStub, admin_user: User) -> None:
    request = users_pb2.CreateUserRequest(
        name="Boss", email="boss@example.com", password=STRONG, roles=users_pb2.RoleList()
    )
    assert list(users_stub.CreateUser(request, metadata=auth_for(admin_user)).roles) == []
    request = users_pb2.CreateUserRequest(
        name="Boss", email="boss2@example.com", password=STRONG,
        roles=users_pb2.RoleList(values=["admin", "user"]),
    )  # fmt: skip
    assert list(users_stub.CreateUser(request, metadata=auth_for(admin_user)).roles) == [
        "admin",
        "user",
    ]


def test_create_invalid(users_stub: UserServiceStub, admin_user: User) -> None:
    request = users_pb2.CreateUserRequest(
        name="", email="nope", password="short", roles=users_pb2.RoleList(values=["god"])
    )
    error = rpc_error(users_stub.CreateUser, request, metadata=auth_for(admin_user))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_errors(error.trailing_metadata())) == {"name", "email", "password", "roles"}


def test_role_errors_are_flat_strings_like_rest(
    users_stub: UserServiceStub, admin_user: User
) -> None:
    """Found by tests/hardening: list items' errors were nested ({"roles": {"0": [...]}})."""
    request = users_pb2.CreateUserRequest(
        name="Roles", email="roles@example.com", password=STRONG,
        roles=users_pb2.RoleList(values=["user", "god"]),
    )  # fmt: skip
    error = rpc_error(users_stub.CreateUser, request, metadata=auth_for(admin_user))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error.trailing_metadata()) == {
        "roles": ['Item 1: "god" is not a valid choice.']
    }


def test_create_duplicate_email_in_another_case(
    users_stub: UserServiceStub, admin_user: User, user: User
) -> None:
    request = users_pb2.CreateUserRequest(name="Dup", email=user.email.upper(), password=STRONG)
    error = rpc_error(users_stub.CreateUser, request, metadata=auth_for(admin_user))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert trailer(error, ERROR_CODE_KEY) == "email_taken"


def test_create_needs_admin(users_stub: UserServiceStub, user: User) -> None:
    request = users_pb2.CreateUserRequest(name="X", email="x@example.com", password=STRONG)
    error = rpc_error(users_stub.CreateUser, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not User.objects.filter(email="x@example.com").exists()


# --- UpdateUser -----------------------------------------------------------------------


def test_update_self_changes_only_what_was_sent(users_stub: UserServiceStub, user: User) -> None:
    request = users_pb2.UpdateUserRequest(id=str(user.pk), name="Renamed")
    reply = users_stub.UpdateUser(request, metadata=auth_for(user))
    assert (reply.name, reply.email, reply.is_active) == ("Renamed", user.email, True)


def test_update_self_cannot_touch_admin_fields(users_stub: UserServiceStub, user: User) -> None:
    request = users_pb2.UpdateUserRequest(
        id=str(user.pk), roles=users_pb2.RoleList(values=["admin"])
    )
    error = rpc_error(users_stub.UpdateUser, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    user.refresh_from_db()
    assert user.role_names == ["user"]


def test_admin_updates_admin_fields(
    users_stub: UserServiceStub, admin_user: User, user: User
) -> None:
    request = users_pb2.UpdateUserRequest(
        id=str(user.pk),
        is_active=False,
        sync_status="failed",
        roles=users_pb2.RoleList(values=["admin", "user"]),
    )
    reply = users_stub.UpdateUser(request, metadata=auth_for(admin_user))
    assert (reply.is_active, reply.sync_status, list(reply.roles)) == (
        False,
        "failed",
        ["admin", "user"],
    )
    assert reply.name == user.name


def test_update_other_is_not_found(
    users_stub: UserServiceStub, user: User, other_user: User
) -> None:
    request = users_pb2.UpdateUserRequest(id=str(other_user.pk), name="Hijacked")
    error = rpc_error(users_stub.UpdateUser, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    other_user.refresh_from_db()
    assert other_user.name != "Hijacked"


def test_update_invalid_and_duplicate(
    users_stub: UserServiceStub, user: User, other_user: User
) -> None:
    invalid = users_pb2.UpdateUserRequest(id=str(user.pk), email="not-an-email", name="")
    error = rpc_error(users_stub.UpdateUser, invalid, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_errors(error.trailing_metadata())) == {"email", "name"}

    taken = users_pb2.UpdateUserRequest(
        id=str(user.pk), email=other_user.email.title(), current_password=DEFAULT_PASSWORD
    )
    error = rpc_error(users_stub.UpdateUser, taken, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


# --- DeleteUser -----------------------------------------------------------------------


def test_delete(users_stub: UserServiceStub, admin_user: User, user: User) -> None:
    users_stub.DeleteUser(
        users_pb2.DeleteUserRequest(id=str(user.pk)), metadata=auth_for(admin_user)
    )
    assert not User.objects.filter(pk=user.pk).exists()
    error = rpc_error(
        users_stub.DeleteUser,
        users_pb2.DeleteUserRequest(id=str(user.pk)),
        metadata=auth_for(admin_user),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_delete_needs_admin(users_stub: UserServiceStub, user: User, other_user: User) -> None:
    request = users_pb2.DeleteUserRequest(id=str(other_user.pk))
    error = rpc_error(users_stub.DeleteUser, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert User.objects.filter(pk=other_user.pk).exists()


def test_deleted_users_token_stops_working(
    users_stub: UserServiceStub, admin_user: User, user: User
) -> None:
    metadata = auth_for(user)
    users_stub.DeleteUser(
        users_pb2.DeleteUserRequest(id=str(user.pk)), metadata=auth_for(admin_user)
    )
    error = rpc_error(
        users_stub.GetUser, users_pb2.GetUserRequest(id=str(user.pk)), metadata=metadata
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
