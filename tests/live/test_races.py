"""Races from parallel clients against the live servers, over REST, gRPC and both.

the REST server (2 workers) and grpcrunserver (2 processes, 10 threads each) on
MariaDB: the outcomes are checked on the wire and in the database itself.
"""

import random
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import jwt
import pytest

from protos.arcana.v1 import auth_pb2, users_pb2
from tests.support.clients import SERVER_FAULTS, Grpc, all_at_once, bearer, rpc
from tests.support.stack import LiveStack

pytestmark = pytest.mark.live

MODES = ["rest", "grpc", "mixed"]


@pytest.fixture(scope="module")
def client(stack: LiveStack) -> Iterator[Grpc]:
    stubs = Grpc(stack)
    yield stubs
    stubs.close()


def over(mode: str, index: int) -> str:
    """Which protocol call ``index`` of a race uses."""
    if mode == "mixed":
        return "rest" if index % 2 else "grpc"
    return mode


def mixed_case(text: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


# Outcomes, protocol-neutral: "ok", "conflict", "unauthenticated", or the raw status.
REST_OUTCOME = {200: "ok", 201: "ok", 401: "unauthenticated", 409: "conflict"}
GRPC_OUTCOME = {
    grpc.StatusCode.OK: "ok",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.ALREADY_EXISTS: "conflict",
}


def rest_outcome(status: int) -> str:
    return REST_OUTCOME.get(status, f"HTTP {status}")


def grpc_outcome(code: grpc.StatusCode) -> str:
    assert code not in SERVER_FAULTS
    return GRPC_OUTCOME.get(code, str(code))


def user_hex(user_id: str) -> str:
    return uuid.UUID(user_id).hex  # Django stores UUIDs as char(32) on MySQL


@pytest.mark.parametrize("mode", MODES)
def test_registering_one_email_twenty_times_at_once_makes_one_user(
    stack: LiveStack, client: Grpc, mode: str
) -> None:
    email = f"race-{secrets.token_hex(4)}@live.example.com"
    rng = random.Random(email)
    spellings = [mixed_case(email, rng) for _ in range(20)]

    def register(index: int) -> Callable[[], str]:
        body = {"name": "Racing Rita", "email": spellings[index], "password": stack.password}
        if over(mode, index) == "rest":
            return lambda: rest_outcome(stack.rest_json("POST", "/api/v1/auth/register", body)[0])
        request = auth_pb2.RegisterRequest(**body)
        return lambda: grpc_outcome(rpc(client.auth.Register, request)[0])

    outcomes = Counter(all_at_once([register(i) for i in range(20)]))

    assert outcomes == {"ok": 1, "conflict": 19}
    rows = stack.query("SELECT email FROM users_user WHERE LOWER(email) = %s", [email])
    assert rows == [(email,)]


def fresh_refresh(stack: LiveStack) -> tuple[str, str]:
    """A new session of the admin: (refresh token, its jti)."""
    status, body = stack.rest_json(
        "POST", "/api/v1/auth/login", {"email": stack.admin_email, "password": stack.password}
    )
    assert status == 200
    refresh = str(body["refresh"])
    return refresh, str(jwt.decode(refresh, options={"verify_signature": False})["jti"])


def sessions_of(stack: LiveStack, user_id: str) -> int:
    rows = stack.query(
        "SELECT COUNT(*) FROM authn_refreshtoken WHERE user_id = %s",
        [user_id],
    )
    return int(rows[0][0])


@pytest.mark.parametrize("mode", MODES)
def test_ten_refreshes_of_one_token_at_once_have_one_winner_then_the_family_dies(
    stack: LiveStack, client: Grpc, mode: str
) -> None:
    """Exactly one use of a refresh token rotates it (the conditional
    revocation update decides). Under RFC 9700 §4.14.2 the nine losers are replays of a
    rotated token, so they end its whole family: the winner's new token too.
    (Before reuse detection the winner's token lived on; a client that refreshes
    one token from several threads at once loses its session, by design.)"""
    refresh, jti = fresh_refresh(stack)
    sessions_before = sessions_of(stack, stack.admin_id)

    def rotate(index: int) -> Callable[[], tuple[str, str | None]]:
        if over(mode, index) == "rest":

            def by_rest() -> tuple[str, str | None]:
                status, body = stack.rest_json("POST", "/api/v1/auth/refresh", {"refresh": refresh})
                return rest_outcome(status), body.get("refresh") if status == 200 else None

            return by_rest

        def by_grpc() -> tuple[str, str | None]:
            code, pair = rpc(client.auth.Refresh, auth_pb2.RefreshRequest(refresh=refresh))
            return grpc_outcome(code), pair.refresh if pair is not None else None

        return by_grpc

    results = all_at_once([rotate(i) for i in range(10)])

    outcomes = Counter(outcome for outcome, _ in results)
    assert outcomes == {"ok": 1, "unauthenticated": 9}
    # The losers issued nothing: exactly one new session, and the old token is dead once.
    assert sessions_of(stack, stack.admin_id) == sessions_before + 1
    blacklisted = stack.query(
        "SELECT COUNT(*) FROM authn_refreshtoken WHERE jti = %s AND revoked_at IS NOT NULL",
        [jti],
    )
    assert blacklisted == [(1,)]
    # Every loser answered after the winner committed (it waited on the winner's
    # blacklist row, or read it), so the winner's token is dead by now, in the
    # database as on the wire.
    winner = next(token for outcome, token in results if outcome == "ok")
    assert winner is not None
    winner_jti = str(jwt.decode(winner, options={"verify_signature": False})["jti"])
    live = stack.query(
        "SELECT COUNT(*) FROM authn_refreshtoken WHERE jti IN (%s, %s) AND revoked_at IS NULL",
        [jti, winner_jti],
    )
    assert live == [(0,)]
    assert stack.rest_json("POST", "/api/v1/auth/refresh", {"refresh": winner})[0] == 401
    assert stack.rest_json("POST", "/api/v1/auth/refresh", {"refresh": refresh})[0] == 401


def write(index: int, tag: str) -> dict[str, Any]:
    """Write ``index``: every field differs from every other write's."""
    return {
        "name": f"Writer {index}",
        "email": f"w{index}-{tag}@live.example.com",
        "sync_status": ("pending", "failed", "synced")[index % 3],
        "roles": ["admin", "user"] if index % 2 else ["user"],
    }


def state(user: dict[str, Any]) -> tuple[str, str, str, tuple[str, ...]]:
    return user["name"], user["email"], user["sync_status"], tuple(sorted(user["roles"]))


def grpc_state(reply: users_pb2.UserResponse) -> tuple[str, str, str, tuple[str, ...]]:
    return reply.name, reply.email, reply.sync_status, tuple(sorted(reply.roles))


@pytest.mark.parametrize("mode", MODES)
def test_parallel_updates_of_one_user_leave_exactly_one_write(
    stack: LiveStack, client: Grpc, mode: str
) -> None:
    tag = secrets.token_hex(4)
    status, created = stack.rest_json(
        "POST",
        "/api/v1/users",
        {
            "name": "Target Tess",
            "email": f"target-{tag}@live.example.com",
            "password": stack.password,
        },
        token=stack.admin_token,
    )
    assert status == 201
    user_id = created["id"]
    writes = [write(i, tag) for i in range(12)]
    admin = bearer(stack.admin_token)

    def update(index: int) -> Callable[[], tuple[str, Any]]:
        values = writes[index]
        if over(mode, index) == "rest":

            def by_rest() -> tuple[str, Any]:
                status, body = stack.rest_json(
                    "PATCH", f"/api/v1/users/{user_id}", values, token=stack.admin_token
                )
                return rest_outcome(status), state(body) if status == 200 else body

            return by_rest

        request = users_pb2.UpdateUserRequest(
            id=user_id,
            name=values["name"],
            email=values["email"],
            sync_status=values["sync_status"],
            roles=users_pb2.RoleList(values=values["roles"]),
        )

        def by_grpc() -> tuple[str, Any]:
            code, reply = rpc(client.users.UpdateUser, request, metadata=admin)
            return grpc_outcome(code), grpc_state(reply) if reply is not None else None

        return by_grpc

    results = all_at_once([update(i) for i in range(len(writes))])

    expected = [state(values) for values in writes]
    # Every write succeeded and answered with itself, whole (no mix of two writes).
    assert results == [("ok", one) for one in expected]
    rows = stack.query(
        "SELECT name, email, sync_status FROM users_user WHERE id = %s", [user_hex(user_id)]
    )
    roles = stack.query(
        "SELECT role_id FROM users_user_roles WHERE user_id = %s ORDER BY role_id",
        [user_hex(user_id)],
    )
    final = (*rows[0], tuple(role for (role,) in roles))
    assert final in expected
    # Both protocols read what the database holds (no stale cache entry survived).
    _, over_rest = stack.rest_json("GET", f"/api/v1/users/{user_id}", token=stack.admin_token)
    code, over_grpc = rpc(
        client.users.GetUser, users_pb2.GetUserRequest(id=user_id), metadata=admin
    )
    assert code == grpc.StatusCode.OK
    assert state(over_rest) == grpc_state(over_grpc) == final
