"""The lockout is shared by both protocols: keyed by account and client address."""

import grpc
from django.test import override_settings
from rest_framework.test import APIClient

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc
from tests.authn.test_lockout import WRONG, _login
from tests.factories import UserFactory
from tests.grpc.conftest import live_db, rpc_error

pytestmark = [live_db]


@override_settings(LOGIN_LOCKOUT_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_rest_failures_lock_the_grpc_login_from_that_address(
    auth_stub: auth_pb2_grpc.AuthServiceStub, password: str
) -> None:
    user = UserFactory.create(password=password)
    for _ in range(3):  # the gRPC test server sees the caller as 127.0.0.1
        assert _login(APIClient(REMOTE_ADDR="127.0.0.1"), user.email, WRONG) == 401
    request = auth_pb2.LoginRequest(email=user.email, password=password)
    assert rpc_error(auth_stub.Login, request).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _login(APIClient(REMOTE_ADDR="10.7.0.1"), user.email, password) == 200
