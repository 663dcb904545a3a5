"""Every guarded gRPC call names its request in its initial metadata: the
caller's ``x-request-id`` when usable, else a fresh one (ErrorInterceptor)."""

import re
from typing import Any

import grpc
import pytest

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import live_db
from users.models import User

FRESH = re.compile(r"[0-9a-f]{32}")
REQUEST_ID = "x-request-id"

# The server's threads open Django's request boundaries, which touch the database.
pytestmark = live_db


def sent_back(metadata: Any) -> list[str]:
    return [value for key, value in metadata or () if key == REQUEST_ID]


def refused_ids(channel: grpc.Channel, *metadata: tuple[str, str]) -> list[str]:
    """The ids an unauthenticated GetUser (refused before any data) came back with."""
    stub = users_pb2_grpc.UserServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetUser(users_pb2.GetUserRequest(id="x"), metadata=metadata, timeout=10)
    error: Any = caught.value  # a grpc.Call too
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    return sent_back(error.initial_metadata())


def test_a_usable_id_is_sent_back(grpc_channel: grpc.Channel) -> None:
    assert refused_ids(grpc_channel, (REQUEST_ID, "grpc-req-1")) == ["grpc-req-1"]


@pytest.mark.parametrize("sent", ["x" * 65, "has space", "semi;colon"])
def test_an_unusable_id_is_replaced(grpc_channel: grpc.Channel, sent: str) -> None:
    (made,) = refused_ids(grpc_channel, (REQUEST_ID, sent))
    assert FRESH.fullmatch(made)


def test_a_call_without_one_gets_a_fresh_one_each_time(grpc_channel: grpc.Channel) -> None:
    (first,) = refused_ids(grpc_channel)
    (second,) = refused_ids(grpc_channel)
    assert FRESH.fullmatch(first)
    assert first != second


def test_a_successful_call_sends_it_back_too(grpc_channel: grpc.Channel, user: User) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(grpc_channel)
    request = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
    _, call = stub.Login.with_call(request, metadata=((REQUEST_ID, "login-9"),), timeout=10)
    assert sent_back(call.initial_metadata()) == ["login-9"]
