"""The machine ``code`` of an error is the same string on REST and gRPC.

Each scenario makes one failing call over both protocols and compares what a
client can branch on: the kind of status (HTTP 401 / UNAUTHENTICATED, ...),
the ``code`` (REST body, gRPC ``arcana-error-code`` trailer) and the human
message (REST ``error``, gRPC details).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from rest_framework.test import APIClient

from arcana.errors import GRPC_STATUS_BY_KIND, HTTP_STATUS_BY_KIND
from arcana.grpc.errors import ERROR_CODE_KEY
from protos.arcana.v1 import auth_pb2, users_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.conftest import expired_token, forged_token, tokens_for
from tests.factories import UserFactory
from tests.grpc.conftest import trailer
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

STRONG = "a long and unusual passphrase 42"

_KIND_BY_HTTP = {status: kind for kind, status in HTTP_STATUS_BY_KIND.items()}
_KIND_BY_GRPC = {grpc.StatusCode[name]: kind for kind, name in GRPC_STATUS_BY_KIND.items()}


@dataclass(frozen=True)
class Failure:
    kind: str
    code: str
    message: str


def rest_failure(
    method: str, path: str, *, authorization: str | None = None, body: Any = None
) -> Failure:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = getattr(client, method)(f"/api/v1{path}", body, format="json")
    assert response.status_code >= 400, response.content
    data = response.json()
    return Failure(_KIND_BY_HTTP[response.status_code], data["code"], data["error"])


def grpc_failure(call: Any, request: Any, *, authorization: str | None = None) -> Failure:
    metadata = None if authorization is None else (("authorization", authorization),)
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, metadata=metadata)
    error: Any = caught.value
    code = trailer(error, ERROR_CODE_KEY)
    return Failure(_KIND_BY_GRPC[error.code()], str(code), error.details())


def _me_both(channel: grpc.Channel, authorization: str | None) -> tuple[Failure, Failure]:
    rest = rest_failure("get", "/auth/me", authorization=authorization)
    rpc = grpc_failure(
        AuthServiceStub(channel).Me, auth_pb2.MeRequest(), authorization=authorization
    )
    return rest, rpc


def _deactivated(user: User) -> str:
    token = tokens_for(user).access
    user.is_active = False
    user.save()
    return f"Bearer {token}"


def _deleted(user: User) -> str:
    token = tokens_for(user).access
    user.delete()
    return f"Bearer {token}"


# attack -> (the Authorization value it sends, the code both transports answer)
TOKEN_ATTACKS: dict[str, tuple[Callable[[User], str | None], str]] = {
    "missing": (lambda user: None, "not_authenticated"),
    "empty header": (lambda user: "", "not_authenticated"),
    "other scheme": (lambda user: "Basic dXNlcjpwYXNz", "not_authenticated"),
    "bearer without token": (lambda user: "Bearer", "bad_authorization_header"),
    "three parts": (lambda user: "Bearer one two", "bad_authorization_header"),
    "garbage": (lambda user: "Bearer not-a-jwt", "token_not_valid"),
    "forged": (lambda user: f"Bearer {forged_token(user)}", "token_not_valid"),
    "expired": (lambda user: f"Bearer {expired_token(user)}", "token_not_valid"),
    "refresh as access": (lambda user: f"Bearer {tokens_for(user).refresh}", "token_not_valid"),
    "deactivated user": (_deactivated, "token_not_valid"),
    "deleted user": (_deleted, "token_not_valid"),
}


@pytest.mark.parametrize("attack", list(TOKEN_ATTACKS))
def test_token_failures_carry_the_same_code(
    grpc_channel: grpc.Channel, user: User, attack: str
) -> None:
    make_header, code = TOKEN_ATTACKS[attack]
    rest, rpc = _me_both(grpc_channel, make_header(user))
    assert (rest.kind, rest.code) == ("unauthenticated", code)
    assert rest == rpc


def test_deactivated_and_deleted_users_look_the_same(grpc_channel: grpc.Channel) -> None:
    """A token holder cannot tell "deleted" from "deactivated"."""
    deactivated = _me_both(grpc_channel, _deactivated(UserFactory.create()))
    deleted = _me_both(grpc_channel, _deleted(UserFactory.create()))
    assert deactivated == deleted
    rest, _ = deleted
    assert (rest.code, rest.message) == ("token_not_valid", "Token is invalid or expired.")


def test_refresh_failures_carry_the_same_code(grpc_channel: grpc.Channel, user: User) -> None:
    auth = AuthServiceStub(grpc_channel)
    for refresh in ("garbage", tokens_for(user).access, _used_refresh(user)):
        rest = rest_failure("post", "/auth/refresh", body={"refresh": refresh})
        rpc = grpc_failure(auth.Refresh, auth_pb2.RefreshRequest(refresh=refresh))
        assert (rest.kind, rest.code) == ("unauthenticated", "token_not_valid")
        assert rest == rpc


def _used_refresh(user: User) -> str:
    refresh = tokens_for(user).refresh
    response = APIClient().post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 200
    return refresh


def test_rule_failures_carry_the_same_code(
    grpc_channel: grpc.Channel, user: User, admin_user: User
) -> None:
    users, auth = UserServiceStub(grpc_channel), AuthServiceStub(grpc_channel)
    mine, admin = f"Bearer {tokens_for(user).access}", f"Bearer {tokens_for(admin_user).access}"
    missing = str(uuid.uuid4())
    pairs = {
        "permission denied": (
            rest_failure("get", "/users", authorization=mine),
            grpc_failure(users.ListUsers, users_pb2.ListUsersRequest(), authorization=mine),
        ),
        "not found": (
            rest_failure("get", f"/users/{missing}", authorization=admin),
            grpc_failure(users.GetUser, users_pb2.GetUserRequest(id=missing), authorization=admin),
        ),
        "email taken": (
            rest_failure(
                "post",
                "/auth/register",
                body={"name": "Dup", "email": user.email, "password": STRONG},
            ),
            grpc_failure(
                auth.Register,
                auth_pb2.RegisterRequest(name="Dup", email=user.email, password=STRONG),
            ),
        ),
        "bad credentials": (
            rest_failure(
                "post", "/auth/login", body={"email": user.email, "password": "wrong-password"}
            ),
            grpc_failure(
                auth.Login, auth_pb2.LoginRequest(email=user.email, password="wrong-password")
            ),
        ),
    }
    assert {name: (rest.kind, rest.code) for name, (rest, _) in pairs.items()} == {
        "permission denied": ("forbidden", "permission_denied"),
        "not found": ("not_found", "user_not_found"),
        "email taken": ("conflict", "email_taken"),
        "bad credentials": ("unauthenticated", "invalid_credentials"),
    }
    for name, (rest, rpc) in pairs.items():
        assert rest == rpc, name


def test_throttled_carries_the_same_code(grpc_channel: grpc.Channel, settings: Any) -> None:
    settings.THROTTLE_RATES = {"login": "1/min", "register": "1/min", "refresh": "1/min"}
    auth = AuthServiceStub(grpc_channel)
    body = {"email": "who@example.com", "password": "whatever-123"}
    failures = []
    for _ in range(2):
        failures.append(
            (
                rest_failure("post", "/auth/login", body=body),
                grpc_failure(auth.Login, auth_pb2.LoginRequest(**body)),
            )
        )
    rest, rpc = failures[-1]
    assert (rest.kind, rest.code) == ("throttled", "throttled")
    assert (rest.kind, rest.code) == (rpc.kind, rpc.code)
