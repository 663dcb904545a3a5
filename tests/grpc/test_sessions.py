"""The account RPCs beside Me: ``ListSessions``, ``RevokeSession``,
``LogoutAll`` and ``UpdateMe`` (REST's sessions endpoints, logout-all and
PATCH /auth/me), in every deployment mode."""

from typing import Any

import grpc
import pytest
from rest_framework.test import APIClient

from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.conftest import client_for, tokens_for
from tests.grpc.conftest import bearer, rpc_error
from tests.layered import every_mode
from users.models import User

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), every_mode]


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/refresh", {"refresh": token}, format="json")


def test_grpc_lists_and_revokes_sessions_and_logs_out_everywhere(
    auth_stub: AuthServiceStub, user: User
) -> None:
    mine, phone = tokens_for(user), tokens_for(user)
    listed = auth_stub.ListSessions(auth_pb2.ListSessionsRequest(), metadata=bearer(mine.access))
    assert len(listed.sessions) == 2
    assert [session.current for session in listed.sessions].count(True) == 1
    rest = client_for(token=mine.access).get("/api/v1/auth/sessions").json()["data"]
    assert {s.id for s in listed.sessions} == {s["id"] for s in rest}  # one shape, both ways
    for session in listed.sessions:
        assert 0 < session.created_at < session.expires_at

    phone_id = next(s.id for s in listed.sessions if not s.current)
    auth_stub.RevokeSession(
        auth_pb2.RevokeSessionRequest(id=phone_id), metadata=bearer(mine.access)
    )
    assert refresh(phone.refresh).status_code == 401
    missing = rpc_error(
        auth_stub.RevokeSession,
        auth_pb2.RevokeSessionRequest(id=phone_id),
        metadata=bearer(mine.access),
    )
    assert missing.code() is grpc.StatusCode.NOT_FOUND

    auth_stub.LogoutAll(auth_pb2.LogoutAllRequest(), metadata=bearer(mine.access))
    assert refresh(mine.refresh).status_code == 401
    after = auth_stub.ListSessions(auth_pb2.ListSessionsRequest(), metadata=bearer(mine.access))
    assert list(after.sessions) == []
    unauthenticated = rpc_error(auth_stub.ListSessions, auth_pb2.ListSessionsRequest())
    assert unauthenticated.code() is grpc.StatusCode.UNAUTHENTICATED


def test_update_me_changes_the_callers_name_only(auth_stub: AuthServiceStub, user: User) -> None:
    token = tokens_for(user).access
    renamed = auth_stub.UpdateMe(
        auth_pb2.UpdateMeRequest(name="  New Name "), metadata=bearer(token)
    )
    assert renamed.name == "New Name"
    assert renamed.email == user.email
    rest = client_for(token=token).get("/api/v1/auth/me").json()
    assert rest["name"] == "New Name"  # one record, both ways
    unchanged = auth_stub.UpdateMe(auth_pb2.UpdateMeRequest(), metadata=bearer(token))
    assert unchanged.name == "New Name"  # no name: nothing changes
    bad = rpc_error(auth_stub.UpdateMe, auth_pb2.UpdateMeRequest(name=""), metadata=bearer(token))
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT
    anonymous = rpc_error(auth_stub.UpdateMe, auth_pb2.UpdateMeRequest(name="X"))
    assert anonymous.code() is grpc.StatusCode.UNAUTHENTICATED
