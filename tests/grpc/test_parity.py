"""REST and gRPC must behave the same: every scenario runs through both, via
one small adapter per protocol, and must produce the same transcript.

Outcomes are compared as transport-neutral kinds (``ok``, ``invalid``,
``unauthenticated``, ``forbidden``, ``not_found``, ``conflict``,
``throttled``), the ones ``arcana.errors`` maps to HTTP and gRPC statuses.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import grpc
import pytest
from django.conf import settings
from django.core.mail import EmailMessage
from django.test import override_settings
from rest_framework.test import APIClient

from arcana.errors import GRPC_STATUS_BY_KIND, HTTP_STATUS_BY_KIND
from arcana.grpc.errors import ERROR_CODE_KEY, field_errors
from protos.arcana.v1 import auth_pb2, users_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.authn.test_api import USER_KEYS
from tests.conftest import expired_token, forged_token, tokens_for
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.grpc.conftest import bearer
from tests.layered import every_mode
from tests.mail import link_of
from users.grpc.servicers import epoch_millis
from users.models import User
from users.tokens import uid_of

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), every_mode]

STRONG = "a long and unusual passphrase 42"
LOW_RATES = {"login": "2/min", "register": "2/min", "refresh": "2/min"}
# Every field of a user but updated_at (which the scenarios' writes move).
USER_FIELDS = tuple(sorted(USER_KEYS - {"updated_at"}))

_KIND_BY_HTTP = {status: kind for kind, status in HTTP_STATUS_BY_KIND.items()}
_KIND_BY_GRPC = {grpc.StatusCode[name]: kind for kind, name in GRPC_STATUS_BY_KIND.items()}


@dataclass(frozen=True)
class Outcome:
    kind: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    fields: frozenset[str] = frozenset()  # invalid fields, when kind == "invalid"
    code: str = field(default="", compare=False)  # the machine code of an error
    message: str = field(default="", compare=False)

    @property
    def user(self) -> dict[str, Any]:
        return {key: self.data.get(key) for key in USER_FIELDS}


class Api(Protocol):
    """The operations both transports offer, as plain data."""

    def register(self, **body: Any) -> Outcome: ...
    def login(self, email: str, password: str) -> Outcome: ...
    def refresh(self, refresh: str) -> Outcome: ...
    def logout(self, token: str | None, refresh: str) -> Outcome: ...
    def me(self, token: str | None) -> Outcome: ...
    def get_user(self, token: str | None, user_id: str) -> Outcome: ...
    def list_users(self, token: str | None, **query: Any) -> Outcome: ...
    def create_user(self, token: str | None, **body: Any) -> Outcome: ...
    def update_user(self, token: str | None, user_id: str, **body: Any) -> Outcome: ...
    def delete_user(self, token: str | None, user_id: str) -> Outcome: ...
    def password_reset(self, email: str) -> Outcome: ...
    def password_reset_confirm(self, uid: str, token: str, new_password: str) -> Outcome: ...
    def verify_email(self, uid: str, token: str) -> Outcome: ...
    def resend_verification(self, email: str) -> Outcome: ...


# --- REST ---------------------------------------------------------------------------------


def _rest_user(data: dict[str, Any]) -> dict[str, Any]:
    """The user fields both transports carry, timestamps as gRPC has them."""
    user = {key: data[key] for key in USER_FIELDS}
    user["created_at"] = epoch_millis(datetime.fromisoformat(data["created_at"]))
    return user


class RestApi:
    def _call(self, method: str, path: str, token: str | None, body: Any = None) -> Outcome:
        client = APIClient()
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        url = f"/api/v1{path}"
        if method == "get":
            response = client.get(url, body)
        else:
            response = getattr(client, method)(url, body, format="json")
        status = response.status_code
        if status < 300:
            data = response.json() if status != 204 else {}
            data = {} if status == 202 else data  # {"detail": ...}; gRPC: Empty
            if "created_at" in data:
                data = _rest_user(data)
            if "user" in data:
                data = {**data, "user": _rest_user(data["user"])}
            if "data" in data:
                data = {**data, "users": [_rest_user(user) for user in data["data"]]}
            return Outcome("ok", data)
        body = response.json()
        fields = frozenset(body.get("errors", {})) if status == 400 else frozenset()
        return Outcome(
            _KIND_BY_HTTP[status],
            fields=fields,
            code=body.get("code", ""),
            message=body.get("error", ""),
        )

    def register(self, **body: Any) -> Outcome:
        return self._call("post", "/auth/register", None, body)

    def login(self, email: str, password: str) -> Outcome:
        return self._call("post", "/auth/login", None, {"email": email, "password": password})

    def refresh(self, refresh: str) -> Outcome:
        return self._call("post", "/auth/refresh", None, {"refresh": refresh})

    def logout(self, token: str | None, refresh: str) -> Outcome:
        return self._call("post", "/auth/logout", token, {"refresh": refresh})

    def me(self, token: str | None) -> Outcome:
        return self._call("get", "/auth/me", token)

    def get_user(self, token: str | None, user_id: str) -> Outcome:
        return self._call("get", f"/users/{user_id}", token)

    def list_users(self, token: str | None, **query: Any) -> Outcome:
        return self._call("get", "/users", token, query)

    def create_user(self, token: str | None, **body: Any) -> Outcome:
        return self._call("post", "/users", token, body)

    def update_user(self, token: str | None, user_id: str, **body: Any) -> Outcome:
        return self._call("patch", f"/users/{user_id}", token, body)

    def delete_user(self, token: str | None, user_id: str) -> Outcome:
        return self._call("delete", f"/users/{user_id}", token)

    def password_reset(self, email: str) -> Outcome:
        return self._call("post", "/auth/password-reset", None, {"email": email})

    def password_reset_confirm(self, uid: str, token: str, new_password: str) -> Outcome:
        body = {"uid": uid, "token": token, "new_password": new_password}
        return self._call("post", "/auth/password-reset/confirm", None, body)

    def verify_email(self, uid: str, token: str) -> Outcome:
        return self._call("post", "/auth/verify-email", None, {"uid": uid, "token": token})

    def resend_verification(self, email: str) -> Outcome:
        return self._call("post", "/auth/verify-email/resend", None, {"email": email})


# --- gRPC ---------------------------------------------------------------------------------


def _grpc_user(message: users_pb2.UserResponse) -> dict[str, Any]:
    return {
        "id": message.id,
        "name": message.name,
        "email": message.email,
        "roles": list(message.roles),
        "sync_status": message.sync_status,
        "is_active": message.is_active,
        "email_verified": message.email_verified,
        "created_at": message.created_at,
    }


def _roles(body: dict[str, Any]) -> dict[str, Any]:
    if "roles" in body:
        return {**body, "roles": users_pb2.RoleList(values=body["roles"])}
    return body


class GrpcApi:
    def __init__(self, channel: grpc.Channel) -> None:
        self.users = UserServiceStub(channel)
        self.auth = AuthServiceStub(channel)

    def _call(self, method: Any, request: Any, token: str | None = None) -> Outcome:
        try:
            reply = method(request, timeout=10, metadata=bearer(token) if token else None)
        except grpc.RpcError as error:
            fields = frozenset(field_errors(error.trailing_metadata()))
            code = next(
                (
                    str(item.value)
                    for item in error.trailing_metadata() or ()
                    if item.key == ERROR_CODE_KEY
                ),
                "",
            )
            return Outcome(
                _KIND_BY_GRPC[error.code()], fields=fields, code=code, message=error.details() or ""
            )
        if isinstance(reply, users_pb2.UserResponse):
            return Outcome("ok", _grpc_user(reply))
        if isinstance(reply, auth_pb2.TokenPair):
            data = {
                "access": reply.access,
                "refresh": reply.refresh,
                "user": _grpc_user(reply.user),
            }
            return Outcome("ok", data)
        if isinstance(reply, users_pb2.ListUsersResponse):
            users = [_grpc_user(user) for user in reply.users]
            return Outcome("ok", {"users": users, "total": reply.total, "size": reply.size})
        return Outcome("ok")

    def register(self, **body: Any) -> Outcome:
        return self._call(self.auth.Register, auth_pb2.RegisterRequest(**body))

    def login(self, email: str, password: str) -> Outcome:
        return self._call(self.auth.Login, auth_pb2.LoginRequest(email=email, password=password))

    def refresh(self, refresh: str) -> Outcome:
        return self._call(self.auth.Refresh, auth_pb2.RefreshRequest(refresh=refresh))

    def logout(self, token: str | None, refresh: str) -> Outcome:
        return self._call(self.auth.Logout, auth_pb2.LogoutRequest(refresh=refresh), token)

    def me(self, token: str | None) -> Outcome:
        return self._call(self.auth.Me, auth_pb2.MeRequest(), token)

    def get_user(self, token: str | None, user_id: str) -> Outcome:
        return self._call(self.users.GetUser, users_pb2.GetUserRequest(id=user_id), token)

    def list_users(self, token: str | None, **query: Any) -> Outcome:
        return self._call(self.users.ListUsers, users_pb2.ListUsersRequest(**query), token)

    def create_user(self, token: str | None, **body: Any) -> Outcome:
        request = users_pb2.CreateUserRequest(**_roles(body))
        return self._call(self.users.CreateUser, request, token)

    def update_user(self, token: str | None, user_id: str, **body: Any) -> Outcome:
        request = users_pb2.UpdateUserRequest(id=user_id, **_roles(body))
        return self._call(self.users.UpdateUser, request, token)

    def delete_user(self, token: str | None, user_id: str) -> Outcome:
        return self._call(self.users.DeleteUser, users_pb2.DeleteUserRequest(id=user_id), token)

    def password_reset(self, email: str) -> Outcome:
        request = auth_pb2.PasswordResetRequest(email=email)
        return self._call(self.auth.RequestPasswordReset, request)

    def password_reset_confirm(self, uid: str, token: str, new_password: str) -> Outcome:
        request = auth_pb2.ConfirmPasswordResetRequest(
            uid=uid, token=token, new_password=new_password
        )
        return self._call(self.auth.ConfirmPasswordReset, request)

    def verify_email(self, uid: str, token: str) -> Outcome:
        request = auth_pb2.VerifyEmailRequest(uid=uid, token=token)
        return self._call(self.auth.VerifyEmail, request)

    def resend_verification(self, email: str) -> Outcome:
        request = auth_pb2.ResendVerificationEmailRequest(email=email)
        return self._call(self.auth.ResendVerificationEmail, request)


@pytest.fixture(params=["rest", "grpc"])
def api(request: pytest.FixtureRequest, grpc_channel: grpc.Channel) -> Api:
    return RestApi() if request.param == "rest" else GrpcApi(grpc_channel)


def kinds(*outcomes: Outcome) -> list[str]:
    return [outcome.kind for outcome in outcomes]


# --- scenarios ------------------------------------------------------------------------------


def test_crud_by_admin(api: Api, admin_user: User) -> None:
    admin = tokens_for(admin_user).access
    created = api.create_user(admin, name="Cary", email="Cary@Example.com", password=STRONG)
    assert created.kind == "ok"
    assert created.user["email"] == "cary@example.com"
    assert created.user["roles"] == ["user"]
    user_id = created.user["id"]
    assert api.get_user(admin, user_id).user == created.user
    updated = api.update_user(admin, user_id, name="Cary Two", sync_status="pending")
    assert (updated.user["name"], updated.user["sync_status"]) == ("Cary Two", "pending")
    listed = api.list_users(admin, sync_status="pending")
    assert [user["id"] for user in listed.data["users"]] == [user_id]
    assert kinds(api.delete_user(admin, user_id), api.get_user(admin, user_id)) == [
        "ok",
        "not_found",
    ]


def test_rbac(api: Api, user: User, other_user: User, admin_user: User) -> None:
    mine, theirs = str(user.pk), str(other_user.pk)
    token, admin = tokens_for(user).access, tokens_for(admin_user).access
    assert kinds(
        api.get_user(token, mine),
        api.get_user(token, theirs),
        api.get_user(admin, theirs),
        api.list_users(token),
        api.create_user(token, name="X", email="x@example.com", password=STRONG),
        api.delete_user(token, theirs),
        api.update_user(token, mine, name="Me Again"),
        api.update_user(token, mine, is_active=False),
        api.update_user(token, mine, roles=["admin"]),
        api.update_user(token, theirs, name="Hijack"),
        api.update_user(admin, theirs, roles=["admin", "user"]),
    ) == [
        "ok",
        "not_found",
        "ok",
        "forbidden",
        "forbidden",
        "forbidden",
        "ok",
        "forbidden",
        "forbidden",
        "not_found",
        "ok",
    ]
    # A role change acts at once, on the token the user already holds.
    assert api.list_users(tokens_for(other_user).access).kind == "ok"


def test_token_attacks(api: Api, user: User) -> None:
    attacks = [None, "garbage", forged_token(user), expired_token(user), tokens_for(user).refresh]
    assert {api.me(token).kind for token in attacks} == {"unauthenticated"}
    assert {api.get_user(token, str(user.pk)).kind for token in attacks} == {"unauthenticated"}
    assert api.me(tokens_for(user).access).user["id"] == str(user.pk)


def test_validation_errors(api: Api, admin_user: User) -> None:
    admin = tokens_for(admin_user).access
    bad_create = api.create_user(admin, name="", email="nope", password="short", roles=["god"])
    assert (bad_create.kind, set(bad_create.fields)) == (
        "invalid",
        {"name", "email", "password", "roles"},
    )
    assert api.list_users(admin, size=0).fields == {"size"}
    assert api.list_users(admin, size=101).fields == {"size"}
    assert api.list_users(admin, page=-1).fields == {"page"}
    assert api.list_users(admin, sync_status="bogus").fields == {"sync_status"}
    default = api.list_users(admin)
    assert (default.kind, default.data["size"], default.data["total"]) == ("ok", 10, 1)
    weak = api.register(name="Weak", email="weak@example.com", password="password")
    assert (weak.kind, set(weak.fields)) == ("invalid", {"password"})
    bad_update = api.update_user(admin, str(admin_user.pk), email="not-an-email")
    assert (bad_update.kind, set(bad_update.fields)) == ("invalid", {"email"})


def test_not_found(api: Api, admin_user: User) -> None:
    admin = tokens_for(admin_user).access
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert (
            kinds(
                api.get_user(admin, missing),
                api.update_user(admin, missing, name="Ghost"),
                api.delete_user(admin, missing),
            )
            == ["not_found"] * 3
        )


def test_duplicate_email(api: Api, user: User, other_user: User) -> None:
    taken = api.register(name="Dup", email=user.email.upper(), password=STRONG)
    moved = api.update_user(
        tokens_for(other_user).access,
        str(other_user.pk),
        email=user.email,
        current_password=DEFAULT_PASSWORD,
    )
    assert kinds(taken, moved) == ["conflict", "conflict"]


def test_auth_flow(api: Api) -> None:
    registered = api.register(name="Flow", email="flow@example.com", password=STRONG)
    assert registered.kind == "ok"
    assert api.me(registered.data["access"]).user == registered.data["user"]
    wrong = api.login("flow@example.com", "wrong-password")
    unknown = api.login("nobody@example.com", STRONG)
    assert kinds(wrong, unknown) == ["unauthenticated", "unauthenticated"]
    pair = api.login("flow@example.com", STRONG)
    rotated = api.refresh(pair.data["refresh"])
    assert kinds(rotated, api.refresh(pair.data["refresh"])) == ["ok", "unauthenticated"]
    # That replay ended the family (RFC 9700 §4.14.2): the rotated token is dead too.
    assert api.refresh(rotated.data["refresh"]).kind == "unauthenticated"
    rotated = api.refresh(api.login("flow@example.com", STRONG).data["refresh"])
    access, refresh = rotated.data["access"], rotated.data["refresh"]
    assert kinds(api.logout(None, refresh), api.logout(access, refresh)) == [
        "unauthenticated",
        "ok",
    ]
    assert api.refresh(refresh).kind == "unauthenticated"


def test_throttling(api: Api, settings: Any) -> None:
    settings.THROTTLE_RATES = LOW_RATES
    logins = [api.login("who@example.com", "whatever-123") for _ in range(3)]
    assert kinds(*logins) == ["unauthenticated", "unauthenticated", "throttled"]
    registrations = [
        api.register(name="N", email=f"n{index}@example.com", password=STRONG) for index in range(3)
    ]
    assert kinds(*registrations) == ["ok", "ok", "throttled"]


@pytest.mark.parametrize("direction", ["rest->grpc", "grpc->rest"])
def test_written_over_one_protocol_read_over_the_other(
    direction: str, grpc_channel: grpc.Channel, admin_user: User
) -> None:
    rest, grpc_api = RestApi(), GrpcApi(grpc_channel)
    writer, reader = (rest, grpc_api) if direction == "rest->grpc" else (grpc_api, rest)
    admin = tokens_for(admin_user).access
    created = writer.create_user(
        admin, name="Both", email="both@example.com", password=STRONG, roles=["admin", "user"]
    )
    user_id = created.user["id"]
    assert reader.get_user(admin, user_id).user == created.user
    updated = reader.update_user(admin, user_id, name="Both Ways", is_active=False)
    assert writer.get_user(admin, user_id).user == updated.user
    assert updated.user["is_active"] is False
    assert writer.login("both@example.com", STRONG).kind == "unauthenticated"  # deactivated


# --- guarded changes (security round two) ----------------------------------------------------


def test_own_email_change_needs_the_current_password(api: Api, user: User) -> None:
    token, user_id = tokens_for(user).access, str(user.pk)
    missing = api.update_user(token, user_id, email="new.me@example.com")
    wrong = api.update_user(token, user_id, email="new.me@example.com", current_password="nope!")
    assert kinds(missing, wrong) == ["invalid", "invalid"]
    assert "current_password" in missing.fields
    assert "current_password" in wrong.fields
    user.refresh_from_db()
    assert user.email == "ursula@example.com"
    moved = api.update_user(
        token, user_id, email="new.me@example.com", current_password=DEFAULT_PASSWORD
    )
    assert moved.kind == "ok"
    assert moved.user["email"] == "new.me@example.com"
    # The name alone needs no password.
    assert api.update_user(token, user_id, name="Only The Name").kind == "ok"


def test_email_change_is_throttled(api: Api, user: User, other_user: User) -> None:
    token = tokens_for(user).access
    with override_settings(THROTTLE_RATES={"email_change": "2/min"}):
        probes = [
            api.update_user(
                token, str(user.pk), email=other_user.email, current_password=DEFAULT_PASSWORD
            )
            for _ in range(3)
        ]
    assert kinds(*probes) == ["conflict", "conflict", "throttled"]


def test_admin_changes_someone_elses_email_without_a_password(
    api: Api, admin_user: User, user: User
) -> None:
    moved = api.update_user(tokens_for(admin_user).access, str(user.pk), email="moved@example.com")
    assert moved.kind == "ok"


def test_api_admins_cannot_touch_superusers(api: Api, admin_user: User) -> None:
    root = UserFactory.create(admin=True, is_staff=True, is_superuser=True)
    admin, root_id = tokens_for(admin_user).access, str(root.pk)
    outcomes = [
        api.update_user(admin, root_id, roles=["user"]),
        api.update_user(admin, root_id, is_active=False),
        api.update_user(admin, root_id, email="taken.over@example.com"),
        api.delete_user(admin, root_id),
    ]
    assert kinds(*outcomes) == ["forbidden"] * 4
    root.refresh_from_db()
    assert root.is_active
    assert root.email != "taken.over@example.com"
    assert "admin" in root.role_names
    # Harmless changes are still allowed, and superusers may do it all.
    assert api.update_user(admin, root_id, name="Renamed Root").kind == "ok"
    other_root = UserFactory.create(admin=True, is_staff=True, is_superuser=True)
    assert api.update_user(tokens_for(other_root).access, root_id, is_active=False).kind == "ok"


def test_the_last_active_admin_cannot_remove_themself(api: Api, admin_user: User) -> None:
    token, admin_id = tokens_for(admin_user).access, str(admin_user.pk)
    UserFactory.create(admin=True, is_active=False)  # inactive admins do not count
    outcomes = [
        api.update_user(token, admin_id, roles=["user"]),
        api.update_user(token, admin_id, is_active=False),
        api.delete_user(token, admin_id),
    ]
    assert kinds(*outcomes) == ["invalid"] * 3
    assert all(outcome.code == "last_admin" for outcome in outcomes)
    assert "last active admin" in outcomes[0].message
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert "admin" in admin_user.role_names
    # With a second active admin it is allowed.
    UserFactory.create(admin=True)
    assert api.update_user(token, admin_id, roles=["user"]).kind == "ok"


# --- account mails: password reset, email verification ----------------------------------------


def test_password_reset(api: Api, user: User, mailoutbox: list[EmailMessage]) -> None:
    session = tokens_for(user).refresh
    assert kinds(api.password_reset("nobody@example.com"), api.password_reset("not an email")) == [
        "ok",
        "invalid",
    ]
    assert mailoutbox == []
    assert api.password_reset(user.email.upper()).kind == "ok"
    (message,) = mailoutbox
    assert message.to == [user.email]
    uid, token = link_of(message, settings.PASSWORD_RESET_URL)

    wrong = api.password_reset_confirm(uid, token[:-2] + "xx", STRONG)
    garbage = api.password_reset_confirm("%%%", token, STRONG)
    stranger = api.password_reset_confirm(uid_of(str(uuid.uuid4())), token, STRONG)
    weak = api.password_reset_confirm(uid, token, "password")
    similar = api.password_reset_confirm(uid, token, user.email)
    assert kinds(wrong, garbage, stranger, weak, similar) == ["invalid"] * 5
    assert {wrong.code, garbage.code, stranger.code} == {"password_reset_link_invalid"}
    assert weak.fields == similar.fields == frozenset({"new_password"})

    assert api.password_reset_confirm(uid, token, STRONG).kind == "ok"
    again = api.password_reset_confirm(uid, token, "yet another passphrase 9")
    assert (again.kind, again.code) == ("invalid", "password_reset_link_invalid")
    assert kinds(api.login(user.email, DEFAULT_PASSWORD), api.login(user.email, STRONG)) == [
        "unauthenticated",
        "ok",
    ]
    assert api.refresh(session).kind == "unauthenticated"  # every session ended


def test_a_reset_link_expires(api: Api, user: User, mailoutbox: list[EmailMessage]) -> None:
    api.password_reset(user.email)
    uid, token = link_of(mailoutbox[-1], settings.PASSWORD_RESET_URL)
    with override_settings(PASSWORD_RESET_TIMEOUT=-1):
        expired = api.password_reset_confirm(uid, token, STRONG)
    assert (expired.kind, expired.code) == ("invalid", "password_reset_link_invalid")


def test_email_verification(api: Api, mailoutbox: list[EmailMessage]) -> None:
    with override_settings(REQUIRE_EMAIL_VERIFICATION=True):
        registered = api.register(name="Vera", email="vera@example.com", password=STRONG)
        assert registered.kind == "ok"
        assert registered.data["user"]["email_verified"] is False
        assert not registered.data.get("access")  # no session before the address is confirmed
        refused = api.login("vera@example.com", STRONG)
        assert (refused.kind, refused.code) == ("forbidden", "email_not_verified")
        assert api.login("vera@example.com", "wrong-password").code == "invalid_credentials"
        (message,) = mailoutbox
        assert message.to == ["vera@example.com"]
        uid, token = link_of(message, settings.EMAIL_VERIFICATION_URL)

        # A reset token of the same user does not verify (each kind has its salt).
        api.password_reset("vera@example.com")
        reset_uid, reset_token = link_of(mailoutbox[-1], settings.PASSWORD_RESET_URL)
        crossed = api.verify_email(reset_uid, reset_token)
        assert (crossed.kind, crossed.code) == ("invalid", "email_verification_link_invalid")
        crossed_back = api.password_reset_confirm(uid, token, "a fresh passphrase 31")
        assert crossed_back.code == "password_reset_link_invalid"

        assert api.verify_email(uid, token).kind == "ok"
        used = api.verify_email(uid, token)
        assert (used.kind, used.code) == ("invalid", "email_verification_link_invalid")
        pair = api.login("vera@example.com", STRONG)
        assert pair.kind == "ok"
        assert pair.data["user"]["email_verified"] is True
        # Nothing to confirm any more: a resend mails nobody.
        sent = len(mailoutbox)
        assert api.resend_verification("vera@example.com").kind == "ok"
        assert api.resend_verification("nobody@example.com").kind == "ok"
        assert len(mailoutbox) == sent


def test_resend_verification(api: Api, mailoutbox: list[EmailMessage]) -> None:
    api.register(name="Rhea", email="rhea@example.com", password=STRONG)
    first = link_of(mailoutbox[-1], settings.EMAIL_VERIFICATION_URL)
    assert api.resend_verification("RHEA@example.com").kind == "ok"
    assert len(mailoutbox) == 2
    second = link_of(mailoutbox[-1], settings.EMAIL_VERIFICATION_URL)
    assert api.verify_email(*second).kind == "ok"
    assert api.verify_email(*first).code == "email_verification_link_invalid"
    assert User.objects.get(email="rhea@example.com").email_verified


def test_an_email_change_waits_for_its_confirmation(
    api: Api, user: User, other_user: User, mailoutbox: list[EmailMessage]
) -> None:
    token, user_id = tokens_for(user).access, str(user.pk)
    with override_settings(REQUIRE_EMAIL_VERIFICATION=True):
        taken = api.update_user(
            token, user_id, email=other_user.email, current_password=DEFAULT_PASSWORD
        )
        assert taken.kind == "conflict"
        moved = api.update_user(
            token, user_id, email="ursula.new@example.com", current_password=DEFAULT_PASSWORD
        )
        assert (moved.kind, moved.user["email"]) == ("ok", user.email)  # not yet
        (message,) = mailoutbox
        assert message.to == ["ursula.new@example.com"]
        link = link_of(message, settings.EMAIL_VERIFICATION_URL)
        assert api.verify_email(*link).kind == "ok"
        me = api.me(token)
        assert (me.user["email"], me.user["email_verified"]) == ("ursula.new@example.com", True)


def test_a_pending_email_taken_meanwhile_is_not_confirmed(
    api: Api, user: User, mailoutbox: list[EmailMessage]
) -> None:
    token, user_id = tokens_for(user).access, str(user.pk)
    with override_settings(REQUIRE_EMAIL_VERIFICATION=True):
        api.update_user(
            token, user_id, email="wanted@example.com", current_password=DEFAULT_PASSWORD
        )
        link = link_of(mailoutbox[-1], settings.EMAIL_VERIFICATION_URL)
        assert api.register(name="Quick", email="wanted@example.com", password=STRONG).kind == "ok"
        assert api.verify_email(*link).kind == "conflict"
    user.refresh_from_db()
    assert (user.email, user.pending_email) == ("ursula@example.com", "wanted@example.com")


def test_account_mails_are_throttled(api: Api, user: User, settings: Any) -> None:
    settings.THROTTLE_RATES = {"password_reset": "2/min", "verify_email_resend": "2/min"}
    resets = [api.password_reset(f"r{index}@example.com") for index in range(3)]
    resends = [api.resend_verification(f"v{index}@example.com") for index in range(3)]
    assert kinds(*resets, *resends) == ["ok", "ok", "throttled"] * 2
    # Per address too, from anywhere: nobody floods one mailbox.
    settings.THROTTLE_RATES = {"account_mail": "2/hour"}
    assert kinds(*(api.password_reset(user.email) for _ in range(3))) == ["ok", "ok", "throttled"]


def test_a_changed_address_is_unverified_until_its_link_is_followed(
    api: Api, user: User, mailoutbox: list[EmailMessage]
) -> None:
    User.objects.filter(pk=user.pk).update(email_verified=True)
    token, user_id = tokens_for(user).access, str(user.pk)
    moved = api.update_user(
        token, user_id, email="ursula.moved@example.com", current_password=DEFAULT_PASSWORD
    )
    assert (moved.user["email"], moved.user["email_verified"]) == (
        "ursula.moved@example.com",
        False,
    )
    (message,) = mailoutbox
    assert message.to == ["ursula.moved@example.com"]
    assert api.verify_email(*link_of(message, settings.EMAIL_VERIFICATION_URL)).kind == "ok"
    assert api.me(token).user["email_verified"] is True
