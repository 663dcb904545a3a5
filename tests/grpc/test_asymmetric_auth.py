"""gRPC auth with an asymmetric key pair: the same tokens as REST, the same checks.

The server runs in this process, so overriding SIMPLE_JWT reaches its worker
threads too (authn.tokens rebuilds its token backend on setting_changed).
"""

from typing import Any

import grpc
import jwt
import pytest

from arcana.core.jwtkeys import JwtKeys
from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.conftest import client_for
from tests.grpc.conftest import bearer, login, rpc_error
from tests.jwtkeys import key_pair, simple_jwt
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def asymmetric(settings: Any) -> JwtKeys:
    keys = key_pair("ed25519")
    settings.SIMPLE_JWT = simple_jwt(keys)
    return keys


def test_grpc_login_me_refresh_with_a_key_pair(
    asymmetric: JwtKeys, auth_stub: AuthServiceStub, user: User
) -> None:
    pair = login(auth_stub, user)
    header = jwt.get_unverified_header(pair.access)
    assert (header["alg"], "kid" in header) == ("EdDSA", True)
    me = auth_stub.Me(auth_pb2.MeRequest(), metadata=bearer(pair.access), timeout=10)
    assert me.id == str(user.pk)

    rotated = auth_stub.Refresh(auth_pb2.RefreshRequest(refresh=pair.refresh), timeout=10)
    assert auth_stub.Me(auth_pb2.MeRequest(), metadata=bearer(rotated.access), timeout=10).id == (
        str(user.pk)
    )
    # And the same token on REST: one token format for both transports.
    assert client_for(token=rotated.access).get("/api/v1/auth/me").json()["id"] == str(user.pk)


def test_grpc_refuses_tokens_of_another_key(
    settings: Any, asymmetric: JwtKeys, auth_stub: AuthServiceStub, user: User
) -> None:
    foreign = login(auth_stub, user).access
    settings.SIMPLE_JWT = simple_jwt(key_pair("ed25519"))
    error = rpc_error(auth_stub.Me, auth_pb2.MeRequest(), metadata=bearer(foreign))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_verifies_with_only_the_public_key(
    settings: Any, asymmetric: JwtKeys, auth_stub: AuthServiceStub, user: User
) -> None:
    pair = login(auth_stub, user)
    settings.SIMPLE_JWT = simple_jwt(asymmetric, verify_only=True)
    me = auth_stub.Me(auth_pb2.MeRequest(), metadata=bearer(pair.access), timeout=10)
    assert me.id == str(user.pk)
