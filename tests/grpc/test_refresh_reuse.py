"""Refresh-token reuse over gRPC (AuthService/Refresh and Logout): the same
service function as REST, so the same family rules (RFC 9700 §4.14.2)."""

import grpc
import pytest

from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.grpc.conftest import bearer, login, rpc_error
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def rotate(auth_stub: AuthServiceStub, token: str) -> auth_pb2.TokenPair:
    pair: auth_pb2.TokenPair = auth_stub.Refresh(auth_pb2.RefreshRequest(refresh=token), timeout=10)
    return pair


def refused(auth_stub: AuthServiceStub, token: str) -> bool:
    error = rpc_error(auth_stub.Refresh, auth_pb2.RefreshRequest(refresh=token))
    return error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_replaying_a_rotated_token_ends_its_family(auth_stub: AuthServiceStub, user: User) -> None:
    r0 = login(auth_stub, user)
    r1 = rotate(auth_stub, r0.refresh)
    assert refused(auth_stub, r0.refresh)
    assert refused(auth_stub, r1.refresh)
    # Access tokens are stateless: R1's works until it expires.
    me = auth_stub.Me(auth_pb2.MeRequest(), metadata=bearer(r1.access), timeout=10)
    assert me.id == str(user.pk)


def test_replay_in_the_middle_of_a_chain_kills_the_newest(
    auth_stub: AuthServiceStub, user: User
) -> None:
    r0 = login(auth_stub, user)
    r1 = rotate(auth_stub, r0.refresh)
    r2 = rotate(auth_stub, r1.refresh)
    assert refused(auth_stub, r1.refresh)
    assert refused(auth_stub, r2.refresh)


def test_replay_leaves_other_sessions_alone(
    auth_stub: AuthServiceStub, user: User, other_user: User
) -> None:
    session, other_session = login(auth_stub, user), login(auth_stub, user)
    stranger = login(auth_stub, other_user)
    rotate(auth_stub, session.refresh)
    assert refused(auth_stub, session.refresh)
    assert rotate(auth_stub, other_session.refresh).user.id == str(user.pk)
    assert rotate(auth_stub, stranger.refresh).user.id == str(other_user.pk)


def test_replaying_a_logged_out_token_is_refused_and_touches_no_other_session(
    auth_stub: AuthServiceStub, user: User
) -> None:
    session, other_session = login(auth_stub, user), login(auth_stub, user)
    r1 = rotate(auth_stub, session.refresh)
    auth_stub.Logout(
        auth_pb2.LogoutRequest(refresh=r1.refresh), metadata=bearer(r1.access), timeout=10
    )
    assert refused(auth_stub, r1.refresh)
    assert refused(auth_stub, session.refresh)
    assert rotate(auth_stub, other_session.refresh).user.id == str(user.pk)


def test_logout_with_a_rotated_token_ends_its_session(
    auth_stub: AuthServiceStub, user: User
) -> None:
    r0 = login(auth_stub, user)
    r1 = rotate(auth_stub, r0.refresh)
    error = rpc_error(
        auth_stub.Logout, auth_pb2.LogoutRequest(refresh=r0.refresh), metadata=bearer(r1.access)
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused(auth_stub, r1.refresh)
