"""No client can starve the server by holding calls open (CapacityInterceptor,
the pool and ``maximum_concurrent_rpcs`` of ``build_server``), connections
have an idle and an age limit, and reflection can be switched off."""

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from arcana.grpc.errors import ERROR_CODE_KEY
from arcana.grpc.server import ArcanaServer, build_server
from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import live_db, rpc_error, start_server, trailer
from users.models import User

SERVING = health_pb2.HealthCheckResponse.SERVING
LOGIN = "/arcana.v1.AuthService/Login"


def _raw(value: bytes) -> bytes:
    return value


# Set when a test ends: the client sides held open by the helpers below let go.
release = threading.Event()


@pytest.fixture
def servers() -> Iterator[Any]:
    """Start servers with given limits (returns a channel to each); all are stopped after."""
    started: list[ArcanaServer] = []
    release.clear()

    def start(**limits: Any) -> grpc.Channel:
        server = start_server(health_interval=3600, **limits)
        started.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        return channel

    yield start
    release.set()
    for server in started:
        server.stop(grace=0).wait()


def held_reflection_stream(channel: grpc.Channel) -> Any:
    """A reflection stream that asks one question, then keeps its request side open."""

    def requests() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        release.wait(timeout=30)

    return reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        requests(), timeout=30
    )


def held_watch(channel: grpc.Channel) -> Any:
    return health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)


def withheld_login(channel: grpc.Channel) -> "grpc.Future[Any]":
    """A Login whose client sends the headers but not the request message."""

    def nothing_yet() -> Iterator[bytes]:
        release.wait(timeout=30)
        yield b""

    return channel.stream_unary(LOGIN, _raw, _raw).future(nothing_yet(), timeout=30)


def first_reply_or_status(stream: Any) -> grpc.StatusCode:
    """OK once the stream answered (it is then held open), else its error status."""
    try:
        next(stream)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def timed(call: Any) -> tuple[Any, float]:
    begun = time.monotonic()
    result = call()
    return result, time.monotonic() - begun


def check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status)


@live_db
def test_held_streams_leave_login_and_health_answering(servers: Any, user: User) -> None:
    """The issue: GRPC_MAX_WORKERS reflection streams held open timed out everyone."""
    channel = servers(max_workers=2, max_streams=3)
    streams = [held_reflection_stream(channel) for _ in range(6)]
    streams += [held_watch(channel) for _ in range(4)]
    outcomes = [first_reply_or_status(stream) for stream in streams]
    assert outcomes.count(grpc.StatusCode.OK) == 3  # 10 asked, more than all threads
    assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 7

    status, took = timed(lambda: check(channel))
    assert status == SERVING
    assert took < 1
    request = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
    pair, took = timed(lambda: AuthServiceStub(channel).Login(request, timeout=1))
    assert pair.user.email == user.email
    assert took < 1
    for stream in streams:
        stream.cancel()


def test_a_stream_beyond_the_bound_is_refused_at_once_and_says_why(servers: Any) -> None:
    channel = servers(max_workers=1, max_streams=1)
    held = held_watch(channel)
    assert next(held).status == SERVING
    refused = held_reflection_stream(channel)
    begun = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        next(refused)
    assert time.monotonic() - begun < 1
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailer(caught.value, ERROR_CODE_KEY) == "throttled"
    held.cancel()
    # The slot comes back when the stream ends.
    deadline = time.monotonic() + 5
    while first_reply_or_status(again := held_watch(channel)) != grpc.StatusCode.OK:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again.cancel()


def test_concurrency_bound_is_resource_exhausted_not_a_hang(servers: Any) -> None:
    channel = servers(max_workers=2, max_streams=1, max_concurrent_rpcs=2, request_timeout=30)
    held = held_watch(channel)
    assert next(held).status == SERVING
    withheld = withheld_login(channel)
    time.sleep(0.2)  # the withheld call is admitted: two calls in flight
    stub = health_pb2_grpc.HealthStub(channel)
    error, took = timed(lambda: rpc_error(stub.Check, health_pb2.HealthCheckRequest()))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert took < 1
    held.cancel()
    withheld.cancel()


def test_a_withheld_unary_request_is_cancelled_and_frees_its_thread(servers: Any) -> None:
    channel = servers(max_workers=1, max_streams=1, request_timeout=0.3)
    withheld = [withheld_login(channel) for _ in range(2)]
    time.sleep(0.1)
    status, took = timed(lambda: check(channel))  # queued behind both, on the one thread
    assert status == SERVING
    assert took < 1
    for call in withheld:
        with pytest.raises(grpc.RpcError) as caught:
            call.result(timeout=5)
        assert caught.value.code() == grpc.StatusCode.CANCELLED


def test_a_unary_call_without_a_message_is_unimplemented(servers: Any) -> None:
    """What grpc itself answers when a unary method's client sends no message."""
    channel = servers()
    with pytest.raises(grpc.RpcError) as caught:
        channel.stream_unary(LOGIN, _raw, _raw)(iter(()), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "exactly one request message" in (caught.value.details() or "")


def test_limits_that_leave_no_room_for_unary_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="must exceed max_streams"):
        build_server(
            "127.0.0.1:0",
            max_workers=2,
            max_message_bytes=1024,
            max_streams=5,
            max_concurrent_rpcs=5,
        )


# --- connections --------------------------------------------------------------------------


def test_connection_age_ends_a_held_stream(servers: Any) -> None:
    channel = servers(max_connection_age=0.5, max_connection_age_grace=0.5)
    held = held_watch(channel)
    assert next(held).status == SERVING
    begun = time.monotonic()
    with pytest.raises(grpc.RpcError):
        next(held)  # no status change: only the connection's end stops it
    assert time.monotonic() - begun < 5
    assert check(channel) == SERVING  # the channel reconnects


def test_an_idle_connection_is_closed(servers: Any) -> None:
    channel = servers(max_connection_idle=0.3)
    states: list[grpc.ChannelConnectivity] = []
    channel.subscribe(states.append, try_to_connect=False)
    assert check(channel) == SERVING
    deadline = time.monotonic() + 5
    while states[-1:] != [grpc.ChannelConnectivity.IDLE] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states[-1] == grpc.ChannelConnectivity.IDLE  # the server sent GOAWAY
    channel.unsubscribe(states.append)


# --- reflection ---------------------------------------------------------------------------


def test_reflection_off_is_unimplemented(servers: Any, settings: Any) -> None:
    settings.GRPC_REFLECTION = False
    channel = servers()
    stream = held_reflection_stream(channel)
    assert first_reply_or_status(stream) == grpc.StatusCode.UNIMPLEMENTED
    assert check(channel) == SERVING


def test_reflection_on_by_default(servers: Any) -> None:
    channel = servers()
    stream = held_reflection_stream(channel)
    assert first_reply_or_status(stream) == grpc.StatusCode.OK
    stream.cancel()
