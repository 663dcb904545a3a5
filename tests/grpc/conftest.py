"""A real gRPC server in this process (port 0, production interceptors) and a
real channel to it.

The server answers on its own worker threads, each with its own database
connection, so tests that use it must be transactional: their data has to be
committed to be seen. ``serialized_rollback`` brings back the rows migrations
seeded (the roles) after each test's flush.
"""

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from django.conf import settings

from arcana.grpc.server import ArcanaServer, build_server
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2_grpc
from tests.conftest import tokens_for
from tests.factories import DEFAULT_PASSWORD
from users.models import User

# Apply to every test that talks to the live server.
live_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def start_server(**overrides: Any) -> ArcanaServer:
    options: dict[str, Any] = {
        "max_workers": 4,
        "max_message_bytes": settings.GRPC_MAX_MESSAGE_BYTES,
        **overrides,
    }
    server = build_server("127.0.0.1:0", **options)
    server.start()
    return server


@pytest.fixture(scope="session")
def grpc_server() -> Iterator[ArcanaServer]:
    """One server for the session: it holds no state between calls.

    Its database watcher is slowed to a crawl: between tests pytest-django
    blocks database access, which the watcher would report as an outage
    (test_health_watch covers the watcher with a server of its own).
    """
    server = start_server(health_interval=3600)
    yield server
    server.stop(grace=0).wait()


@pytest.fixture(scope="session")
def grpc_channel(grpc_server: ArcanaServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="session")
def users_stub(grpc_channel: grpc.Channel) -> users_pb2_grpc.UserServiceStub:
    return users_pb2_grpc.UserServiceStub(grpc_channel)


@pytest.fixture(scope="session")
def auth_stub(grpc_channel: grpc.Channel) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(grpc_channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def auth_for(user: User) -> tuple[tuple[str, str], ...]:
    """Metadata carrying a fresh access token of ``user``."""
    return bearer(tokens_for(user).access)


def rpc_error(call: Any, request: Any, **kwargs: Any) -> grpc.RpcError:
    """Make the call, which must fail, and return its error."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, **kwargs)
    error: grpc.RpcError = caught.value
    return error


def trailer(error: grpc.RpcError, key: str) -> str | bytes | None:
    """One trailing metadata value of a failed call."""
    for item in error.trailing_metadata() or ():
        if item.key == key:
            value: str | bytes = item.value
            return value
    return None


def login(auth_stub: auth_pb2_grpc.AuthServiceStub, user: User) -> auth_pb2.TokenPair:
    request = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
    pair: auth_pb2.TokenPair = auth_stub.Login(request, timeout=10)
    return pair
