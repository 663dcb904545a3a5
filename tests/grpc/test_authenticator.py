"""The gRPC interceptor authenticates with ``ARCANA_AUTHENTICATOR`` and lets
through, unauthenticated, exactly the methods the apps declare public."""

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import users.repository
from arcana.core import grpc as core_grpc
from arcana.core.exceptions import Unauthenticated
from arcana.core.grpc import public_methods, public_methods_declare
from arcana.grpc.server import ArcanaServer
from authn.services import Authenticated
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from tests.grpc.conftest import auth_for, live_db, rpc_error, start_server
from users.models import User

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
USER_SERVICE = users_pb2.DESCRIPTOR.services_by_name["UserService"]


def user_id_authenticator(*, authorization: str | None) -> Authenticated:
    """A stand-in for authn: ``Test <user id>`` is that user, anything else is refused."""
    scheme, _, user_id = (authorization or "").partition(" ")
    if scheme != "Test":
        raise Unauthenticated("Only the test scheme is accepted here.")
    record = users.repository.user_get(user_id=user_id)
    return Authenticated(user=record, session_id=None)


@pytest.fixture
def test_scheme_server() -> Iterator[ArcanaServer]:
    with override_settings(
        ARCANA_AUTHENTICATOR="tests.grpc.test_authenticator.user_id_authenticator"
    ):
        server = start_server(health_interval=3600)
    yield server
    server.stop(grace=0).wait()


@live_db
def test_the_interceptor_authenticates_with_the_configured_authenticator(
    test_scheme_server: ArcanaServer, user: User
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{test_scheme_server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        me = stub.Me(auth_pb2.MeRequest(), metadata=(("authorization", f"Test {user.pk}"),))
        assert me.email == user.email
        # authn's bearer tokens mean nothing to this authenticator.
        error = rpc_error(stub.Me, auth_pb2.MeRequest(), metadata=auth_for(user))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "Only the test scheme is accepted here."


def test_an_authenticator_that_cannot_be_imported_stops_the_server() -> None:
    with (
        override_settings(ARCANA_AUTHENTICATOR="tests.grpc.test_authenticator.nobody"),
        pytest.raises(ImproperlyConfigured, match="ARCANA_AUTHENTICATOR"),
    ):
        start_server()


def test_authn_declares_the_anonymous_methods_public() -> None:
    public = dict(public_methods())
    assert {path: scope for path, scope in public.items() if "AuthService" in path} == {
        "/arcana.v1.AuthService/Register": "register",
        "/arcana.v1.AuthService/Login": "login",
        "/arcana.v1.AuthService/Refresh": "refresh",
        "/arcana.v1.AuthService/RequestPasswordReset": "password_reset",
        "/arcana.v1.AuthService/ConfirmPasswordReset": "password_reset_confirm",
        "/arcana.v1.AuthService/VerifyEmail": "verify_email",
        "/arcana.v1.AuthService/ResendVerificationEmail": "verify_email_resend",
    }
    assert not [path for path in public if "UserService" in path]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declarations made by the test vanish with it."""
    monkeypatch.setattr(core_grpc, "_public", dict(core_grpc._public))


@pytest.mark.usefixtures("scratch_registry")
def test_declarations_name_real_methods_and_one_scope_each() -> None:
    with pytest.raises(ImproperlyConfigured, match="no method 'Logn'"):
        public_methods_declare(service=AUTH_SERVICE, throttle_scopes={"Logn": "login"})
    public_methods_declare(service=AUTH_SERVICE, throttle_scopes={"Login": "login"})  # again: fine
    with pytest.raises(ImproperlyConfigured, match="already public"):
        public_methods_declare(service=AUTH_SERVICE, throttle_scopes={"Login": "register"})


@live_db  # the server's threads open Django's request boundaries, which touch the database
@pytest.mark.usefixtures("scratch_registry")
def test_the_interceptor_reads_the_declarations_at_call_time(
    users_stub: users_pb2_grpc.UserServiceStub, settings: Any
) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "1/min"}
    request = users_pb2.GetUserRequest(id="x")
    # Not declared: the interceptor wants credentials, and counts nothing.
    for _ in range(2):
        error = rpc_error(users_stub.GetUser, request)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "Authentication credentials were not provided."
    public_methods_declare(service=USER_SERVICE, throttle_scopes={"GetUser": "login"})
    # Declared: let through to the servicer, which finds no caller; then throttled.
    error = rpc_error(users_stub.GetUser, request)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == Unauthenticated.default_message
    assert rpc_error(users_stub.GetUser, request).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
