"""Server assembly: health, reflection, error mapping, request boundaries,
message limits, graceful shutdown."""

import logging
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from django.core.signals import request_finished, request_started
from django.db import OperationalError
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from rest_framework.exceptions import ValidationError

from arcana.core import grpc_compat as compat
from arcana.core.grpc import peer_address
from arcana.grpc.errors import ERROR_CODE_KEY, field_errors
from arcana.grpc.server import ArcanaServer
from protos.arcana.v1 import auth_pb2, users_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.grpc.conftest import auth_for, live_db, rpc_error, start_server, trailer
from users.models import User

# --- health and reflection ---------------------------------------------------------------


@pytest.mark.parametrize("service", ["", "arcana.v1.UserService", "arcana.v1.AuthService"])
def test_health_is_serving(grpc_channel: grpc.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(grpc_channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_unknown_service_is_not_found(grpc_channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(grpc_channel)
    error = rpc_error(stub.Check, health_pb2.HealthCheckRequest(service="nope.Service"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_everything(grpc_channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(grpc_channel)
    assert set(database.get_services()) == {
        "arcana.v1.UserService",
        "arcana.v1.AuthService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    pool = DescriptorPool(database)
    login = pool.FindServiceByName("arcana.v1.AuthService").methods_by_name["Login"]
    assert login.input_type.full_name == "arcana.v1.LoginRequest"
    user_type = login.output_type.fields_by_name["user"].message_type
    assert user_type is not None
    assert user_type.full_name == "arcana.v1.UserResponse"
    update = pool.FindMessageTypeByName("arcana.v1.UpdateUserRequest")
    assert update.fields_by_name["name"].has_presence


# --- the one error-mapping point ----------------------------------------------------------


@live_db
def test_database_down_is_unavailable(
    users_stub: UserServiceStub, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata = auth_for(user)

    def down(**kwargs: Any) -> None:
        raise OperationalError("server has gone away")

    monkeypatch.setattr("users.services.user_get", down)
    error = rpc_error(
        users_stub.GetUser, users_pb2.GetUserRequest(id=str(user.pk)), metadata=metadata
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert trailer(error, ERROR_CODE_KEY) == "service_unavailable"
    assert "gone away" not in (error.details() or "")


@live_db
def test_unexpected_error_is_internal_and_logged(
    users_stub: UserServiceStub,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    metadata = auth_for(user)

    def broken(**kwargs: Any) -> None:
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr("users.services.user_get", broken)
    with caplog.at_level(logging.ERROR, logger="arcana.grpc"):
        error = rpc_error(
            users_stub.GetUser, users_pb2.GetUserRequest(id=str(user.pk)), metadata=metadata
        )
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (error.details() or "")
    (record,) = [r for r in caplog.records if r.name == "arcana.grpc"]
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


@live_db
def test_drf_validation_error_is_invalid_argument(
    auth_stub: AuthServiceStub, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def invalid(**kwargs: Any) -> None:
        raise ValidationError({"refresh": ["Bad."]})

    monkeypatch.setattr("authn.services.auth_logout", invalid)
    request = auth_pb2.LogoutRequest(refresh="x")
    error = rpc_error(auth_stub.Logout, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error.trailing_metadata()) == {"refresh": ["Bad."]}


# --- request boundaries: database connections as Django handles them -----------------------


@pytest.fixture
def request_signals() -> Iterator[list[str]]:
    seen: list[str] = []

    def started(**kwargs: Any) -> None:
        seen.append("started")

    def finished(**kwargs: Any) -> None:
        seen.append("finished")

    request_started.connect(started, weak=False)
    request_finished.connect(finished, weak=False)
    yield seen
    request_started.disconnect(started)
    request_finished.disconnect(finished)


@live_db
def test_every_call_is_a_django_request_errors_included(
    auth_stub: AuthServiceStub, user: User, request_signals: list[str]
) -> None:
    auth_stub.Me(auth_pb2.MeRequest(), metadata=auth_for(user))
    rpc_error(auth_stub.Me, auth_pb2.MeRequest())  # rejected by the interceptor
    rpc_error(auth_stub.Login, auth_pb2.LoginRequest(email="x@example.com", password="nope-nope"))
    assert request_signals == ["started", "finished"] * 3


# --- limits and shutdown ------------------------------------------------------------------------


def test_oversized_message_is_refused() -> None:
    server = start_server(max_message_bytes=1024)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            request = auth_pb2.LoginRequest(email="a@example.com", password="x" * 2048)
            error = rpc_error(AuthServiceStub(channel).Login, request)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop(0).wait()


def test_health_goes_not_serving_on_shutdown() -> None:
    server: ArcanaServer = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stopped = server.stop(grace=2)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()  # the last in-flight call: the server may now finish early
        assert stopped.wait(timeout=1.5)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.1.2.3:5000", "10.1.2.3"),
        ("ipv6:[::1]:5000", "::1"),
        ("unix:/tmp/grpc.sock", "unix:/tmp/grpc.sock"),
    ],
)
def test_peer_address(peer: str, address: str) -> None:
    assert peer_address(peer) == address


# --- handlers of every kind go through the same guards --------------------------------------


def _identity(value: bytes) -> bytes:
    return value


def _test_service() -> "grpc.GenericRpcHandler[bytes, bytes]":
    """A raw-bytes service with a streaming method and one that picks its own status."""

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"one"
        if request == b"fail":
            raise RuntimeError("mid-stream")
        yield b"two"

    def precondition(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "chosen by the servicer")

    return grpc.method_handlers_generic_handler(
        "test.Raw",
        {
            "Stream": grpc.unary_stream_rpc_method_handler(stream, _identity, _identity),
            "Precondition": grpc.unary_unary_rpc_method_handler(precondition, _identity, _identity),
        },
    )


@pytest.fixture
def raw_channel() -> Iterator[grpc.Channel]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        handlers=[_test_service()],
        interceptors=compat.server_interceptors(),
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    server.stop(0).wait()


@live_db
def test_streaming_methods_are_guarded_too(raw_channel: grpc.Channel, user: User) -> None:
    stream = raw_channel.unary_stream("/test.Raw/Stream", _identity, _identity)
    with pytest.raises(grpc.RpcError) as caught:
        list(stream(b"", timeout=5))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert list(stream(b"", timeout=5, metadata=auth_for(user))) == [b"one", b"two"]
    with pytest.raises(grpc.RpcError) as caught:
        list(stream(b"fail", timeout=5, metadata=auth_for(user)))
    assert caught.value.code() == grpc.StatusCode.INTERNAL


@live_db
def test_a_status_chosen_by_the_servicer_is_kept(raw_channel: grpc.Channel, user: User) -> None:
    call = raw_channel.unary_unary("/test.Raw/Precondition", _identity, _identity)
    error = rpc_error(call, b"", metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "chosen by the servicer"


# --- undecodable requests (found by tests/hardening) ------------------------------------

# Field 1 (a proto3 string) holding bytes that are not UTF-8, and a varint that never ends.
UNDECODABLE = [b"\x0a\x02\xff\xfe", b"\xff" * 16]


@live_db
@pytest.mark.parametrize("payload", UNDECODABLE)
def test_undecodable_request_is_invalid_argument_not_internal(
    grpc_channel: grpc.Channel, user: User, payload: bytes
) -> None:
    """grpc answers INTERNAL when a request does not parse; clients get INVALID_ARGUMENT."""
    call = grpc_channel.unary_unary("/arcana.v1.UserService/GetUser", None, None)
    error = rpc_error(call, payload, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error.trailing_metadata()) == {
        "non_field_errors": ["The request message could not be decoded."]
    }
    public = grpc_channel.unary_unary("/arcana.v1.AuthService/Login", None, None)
    assert rpc_error(public, payload).code() == grpc.StatusCode.INVALID_ARGUMENT


@live_db
def test_undecodable_request_is_authenticated_first(grpc_channel: grpc.Channel) -> None:
    """As REST answers 401 before looking at a malformed body."""
    call = grpc_channel.unary_unary("/arcana.v1.UserService/GetUser", None, None)
    assert rpc_error(call, UNDECODABLE[0]).code() == grpc.StatusCode.UNAUTHENTICATED


@live_db
def test_decodable_raw_request_still_works(grpc_channel: grpc.Channel, user: User) -> None:
    call = grpc_channel.unary_unary("/arcana.v1.UserService/GetUser", None, None)
    request = users_pb2.GetUserRequest(id=str(user.pk)).SerializeToString()
    reply = users_pb2.UserResponse.FromString(call(request, metadata=auth_for(user), timeout=10))
    assert reply.email == user.email


def test_cache_objects_outlive_a_call_on_the_same_thread() -> None:
    import contextvars

    from django.core.cache import caches

    from arcana.grpc.server import keep_caches_per_thread

    keep_caches_per_thread()  # what build_server does (the session server already did)

    def current() -> object:
        return caches["default"]

    # grpc runs every call in a fresh, empty context.
    first = contextvars.Context().run(current)
    second = contextvars.Context().run(current)
    assert first is second
