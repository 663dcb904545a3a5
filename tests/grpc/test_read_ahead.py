"""One cache round trip serves the caller and the target of GetUser
(``arcana.core.grpc.read_ahead_declare``), as for REST."""

import pytest

from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.cache_spy import CountingCache
from tests.grpc.conftest import auth_for
from users.models import User


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_grpc_reads_caller_and_target_in_one_round_trip(
    users_stub: UserServiceStub, warm_users: CountingCache, other_user: User, admin_user: User
) -> None:
    metadata = auth_for(admin_user)
    warm_users.calls.clear()  # issuing the token is not the call
    request = users_pb2.GetUserRequest(id=str(other_user.pk))
    assert users_stub.GetUser(request, metadata=metadata).email == other_user.email
    assert warm_users.calls == ["get_many"]
    warm_users.calls.clear()
    request = users_pb2.GetUserRequest(id=str(admin_user.pk))
    assert users_stub.GetUser(request, metadata=metadata).email == admin_user.email
    assert warm_users.calls == ["get"]  # reading oneself: the caller's record, once


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_undecodable_request_reads_nothing_ahead(
    grpc_channel: object, warm_users: CountingCache, admin_user: User
) -> None:
    import grpc

    assert isinstance(grpc_channel, grpc.Channel)
    call = grpc_channel.unary_unary("/arcana.v1.UserService/GetUser", None, None)
    metadata = auth_for(admin_user)
    warm_users.calls.clear()
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\xff\xff\xff", metadata=metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert warm_users.calls == ["get"]  # the caller only
