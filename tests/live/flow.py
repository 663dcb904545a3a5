"""One end-to-end flow of a running deployment, through its public REST port
and its public gRPC port (issue 8: every mode passes the same suite through
the same public addresses).

:func:`user_journey` drives, on each protocol in turn: register -> login ->
me -> users CRUD as the admin -> refresh -> logout -> password change, and
checks every answer. The servers are real processes (``make run``'s, or
``tests.support.stack.live_stack``'s); the clients are plain ``http.client`` and a
gRPC channel, as a user of the API would have them.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message

from arcana.errors import GRPC_STATUS_BY_KIND, HTTP_STATUS_BY_KIND
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc

NEW_PASSWORD = "marble canyon whistle ember 5520"
# Generous: a loaded 2-core machine hashes Argon2 slowly.
TIMEOUT = 60.0
# The servers' internal deadline for the journey. The default (2 s) holds a
# login's Argon2 hash on a quiet machine, not on a shared 2-core box where one
# can take seconds: layered mode then answers 503 (tests/faults test the
# deadline itself); the journey is about what each call answers.
JOURNEY_DEADLINE = {"ARCANA_INTERNAL_DEADLINE": "20"}

_KIND_BY_HTTP = {status: kind for kind, status in HTTP_STATUS_BY_KIND.items()}
_KIND_BY_GRPC = {grpc.StatusCode[name]: kind for kind, name in GRPC_STATUS_BY_KIND.items()}
USER_FIELDS = ("id", "name", "email", "roles", "is_active", "sync_status")


@dataclass(frozen=True)
class Outcome:
    """A call's result as either protocol has it: ``ok`` or an error kind
    (``arcana.errors``), and the decoded answer."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def ok(self) -> dict[str, Any]:
        return self.expect("ok")

    def expect(self, kind: str) -> dict[str, Any]:
        assert self.kind == kind, f"expected {kind}, got {self}"
        return self.data


class Api(Protocol):
    """The public operations the flow uses, as plain data."""

    name: str

    def register(self, *, name: str, email: str, password: str) -> Outcome: ...
    def login(self, *, email: str, password: str) -> Outcome: ...
    def me(self, token: str) -> Outcome: ...
    def refresh(self, refresh: str) -> Outcome: ...
    def logout(self, token: str, refresh: str) -> Outcome: ...
    def change_password(self, token: str, current: str, new: str) -> Outcome: ...
    def create_user(self, token: str, **body: Any) -> Outcome: ...
    def get_user(self, token: str, user_id: str) -> Outcome: ...
    def list_users(self, token: str, search: str) -> Outcome: ...
    def update_user(self, token: str, user_id: str, **body: Any) -> Outcome: ...
    def delete_user(self, token: str, user_id: str) -> Outcome: ...


# --- REST -------------------------------------------------------------------------------


class RestApi:
    name = "REST"

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port

    def call(self, method: str, path: str, body: Any = None, token: str = "") -> Outcome:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(method, f"/api/v1{path}", body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        assert response.getheader("Content-Type", "").startswith("application/json") or not raw
        data = json.loads(raw) if raw else {}
        if response.status >= 300:
            return Outcome(_KIND_BY_HTTP[response.status], data)
        if "data" in data:  # a page of users
            data = {**data, "users": [_rest_user(user) for user in data["data"]]}
        elif "user" in data:
            data = {**data, "user": _rest_user(data["user"])}
        elif "email" in data:
            data = _rest_user(data)
        return Outcome("ok", data)

    def register(self, *, name: str, email: str, password: str) -> Outcome:
        body = {"name": name, "email": email, "password": password}
        return self.call("POST", "/auth/register", body)

    def login(self, *, email: str, password: str) -> Outcome:
        return self.call("POST", "/auth/login", {"email": email, "password": password})

    def me(self, token: str) -> Outcome:
        return self.call("GET", "/auth/me", token=token)

    def refresh(self, refresh: str) -> Outcome:
        return self.call("POST", "/auth/refresh", {"refresh": refresh})

    def logout(self, token: str, refresh: str) -> Outcome:
        return self.call("POST", "/auth/logout", {"refresh": refresh}, token)

    def change_password(self, token: str, current: str, new: str) -> Outcome:
        body = {"current_password": current, "new_password": new}
        return self.call("POST", "/auth/password", body, token)

    def create_user(self, token: str, **body: Any) -> Outcome:
        return self.call("POST", "/users", body, token)

    def get_user(self, token: str, user_id: str) -> Outcome:
        return self.call("GET", f"/users/{user_id}", token=token)

    def list_users(self, token: str, search: str) -> Outcome:
        return self.call("GET", f"/users?page=0&size=10&search={search}", token=token)

    def update_user(self, token: str, user_id: str, **body: Any) -> Outcome:
        return self.call("PATCH", f"/users/{user_id}", body, token)

    def delete_user(self, token: str, user_id: str) -> Outcome:
        return self.call("DELETE", f"/users/{user_id}", token=token)


def _rest_user(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in USER_FIELDS}


# --- gRPC -------------------------------------------------------------------------------


class GrpcApi:
    name = "gRPC"

    def __init__(self, channel: grpc.Channel) -> None:
        self.users = users_pb2_grpc.UserServiceStub(channel)
        self.auth = auth_pb2_grpc.AuthServiceStub(channel)

    def call(self, method: Any, request: Message, token: str = "") -> Outcome:
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        try:
            reply = method(request, timeout=TIMEOUT, metadata=metadata)
        except grpc.RpcError as error:
            return Outcome(_KIND_BY_GRPC[error.code()], {"details": error.details()})
        if isinstance(reply, users_pb2.UserResponse):
            return Outcome("ok", _grpc_user(reply))
        if isinstance(reply, auth_pb2.TokenPair):
            pair = {"access": reply.access, "refresh": reply.refresh}
            return Outcome("ok", {**pair, "user": _grpc_user(reply.user)})
        if isinstance(reply, users_pb2.ListUsersResponse):
            users = [_grpc_user(user) for user in reply.users]
            return Outcome("ok", {"users": users, "total": reply.total})
        return Outcome("ok")

    def register(self, *, name: str, email: str, password: str) -> Outcome:
        request = auth_pb2.RegisterRequest(name=name, email=email, password=password)
        return self.call(self.auth.Register, request)

    def login(self, *, email: str, password: str) -> Outcome:
        return self.call(self.auth.Login, auth_pb2.LoginRequest(email=email, password=password))

    def me(self, token: str) -> Outcome:
        return self.call(self.auth.Me, auth_pb2.MeRequest(), token)

    def refresh(self, refresh: str) -> Outcome:
        return self.call(self.auth.Refresh, auth_pb2.RefreshRequest(refresh=refresh))

    def logout(self, token: str, refresh: str) -> Outcome:
        return self.call(self.auth.Logout, auth_pb2.LogoutRequest(refresh=refresh), token)

    def change_password(self, token: str, current: str, new: str) -> Outcome:
        request = auth_pb2.ChangePasswordRequest(current_password=current, new_password=new)
        return self.call(self.auth.ChangePassword, request, token)

    def create_user(self, token: str, **body: Any) -> Outcome:
        roles = users_pb2.RoleList(values=body.pop("roles")) if "roles" in body else None
        request = users_pb2.CreateUserRequest(**body, roles=roles)
        return self.call(self.users.CreateUser, request, token)

    def get_user(self, token: str, user_id: str) -> Outcome:
        return self.call(self.users.GetUser, users_pb2.GetUserRequest(id=user_id), token)

    def list_users(self, token: str, search: str) -> Outcome:
        request = users_pb2.ListUsersRequest(page=0, size=10, search=search)
        return self.call(self.users.ListUsers, request, token)

    def update_user(self, token: str, user_id: str, **body: Any) -> Outcome:
        roles = users_pb2.RoleList(values=body.pop("roles")) if "roles" in body else None
        request = users_pb2.UpdateUserRequest(id=user_id, **body, roles=roles)
        return self.call(self.users.UpdateUser, request, token)

    def delete_user(self, token: str, user_id: str) -> Outcome:
        return self.call(self.users.DeleteUser, users_pb2.DeleteUserRequest(id=user_id), token)


def _grpc_user(message: users_pb2.UserResponse) -> dict[str, Any]:
    return {
        "id": message.id,
        "name": message.name,
        "email": message.email,
        "roles": list(message.roles),
        "is_active": message.is_active,
        "sync_status": message.sync_status,
    }


@contextmanager
def public_apis(rest_port: int, grpc_address: str) -> Iterator[tuple[RestApi, GrpcApi]]:
    with grpc.insecure_channel(grpc_address) as channel:
        yield RestApi(rest_port), GrpcApi(channel)


# --- the flow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    email: str
    password: str


def user_journey(api: Api, admin: Admin, *, password: str, other: Api | None = None) -> None:
    """Everything a user and an admin do, on ``api``; ``other`` (the other
    protocol) must accept the tokens ``api`` issued. Each password hashed costs
    a few hundred milliseconds (Argon2 as deployed): the journey hashes few."""
    tag = f"{api.name.lower()}-{secrets.token_hex(4)}"
    email = f"journey-{tag}@e2e.example.com"

    # A newcomer registers, logs in and reads their own record.
    registered = api.register(name="Journey User", email=email.upper(), password=password).ok()
    user = registered["user"]
    assert (user["email"], user["roles"], user["is_active"]) == (email, ["user"], True), user
    pair = api.login(email=email, password=password).ok()
    assert pair["user"] == user
    assert api.me(pair["access"]).ok() == user
    if other is not None:  # one token, both protocols, every tier
        assert other.me(pair["access"]).ok() == user
    api.list_users(pair["access"], "journey").expect("forbidden")

    # The admin manages users: create, read, list, update, delete.
    boss = api.login(email=admin.email, password=admin.password).ok()
    token = boss["access"]
    assert "admin" in boss["user"]["roles"]
    staff_email = f"staff-{tag}@e2e.example.com"
    created = api.create_user(
        token, name="Staff Member", email=staff_email, password=password, roles=["user", "admin"]
    ).ok()
    assert (created["email"], sorted(created["roles"])) == (staff_email, ["admin", "user"])
    assert api.get_user(token, created["id"]).ok() == created
    page = api.list_users(token, tag).ok()
    assert {found["email"] for found in page["users"]} == {email, staff_email}, page
    updated = api.update_user(token, created["id"], name="Staff Renamed", roles=["user"]).ok()
    assert (updated["name"], updated["roles"]) == ("Staff Renamed", ["user"])
    assert api.get_user(token, created["id"]).ok() == updated
    api.update_user(token, user["id"], email=staff_email).expect("conflict")
    api.delete_user(token, created["id"]).expect("ok")
    api.get_user(token, created["id"]).expect("not_found")
    assert api.list_users(token, tag).ok()["users"] == [user]

    # Refresh rotates: the old refresh token is dead, the new pair works.
    rotated = api.refresh(pair["refresh"]).ok()
    assert rotated["refresh"] != pair["refresh"]
    assert api.me(rotated["access"]).ok() == user
    api.refresh(pair["refresh"]).expect("unauthenticated")  # reuse: ends the family

    # Logout ends that session only: the registration's lives on.
    mine = api.login(email=email, password=password).ok()
    api.logout(mine["access"], mine["refresh"]).expect("ok")
    api.refresh(mine["refresh"]).expect("unauthenticated")
    elsewhere = api.refresh(registered["refresh"]).ok()

    # Changing the password keeps the caller's session and ends the others.
    mine = api.login(email=email, password=password).ok()
    api.change_password(mine["access"], password, NEW_PASSWORD).expect("ok")
    api.refresh(elsewhere["refresh"]).expect("unauthenticated")
    assert api.refresh(mine["refresh"]).ok()
    api.login(email=email, password=password).expect("unauthenticated")
    assert api.login(email=email, password=NEW_PASSWORD).ok()["user"] == user
    # The admin's session was never touched.
    assert api.me(token).ok()["email"] == admin.email


def run_journeys(rest_port: int, grpc_address: str, admin: Admin, *, password: str) -> None:
    """:func:`user_journey` through the public REST port, then the public gRPC port."""
    with public_apis(rest_port, grpc_address) as (rest, rpc):
        user_journey(rest, admin, password=password, other=rpc)
        user_journey(rpc, admin, password=password, other=rest)
