"""Answers a client reads as false or 0 are present in JSON renderings of the
messages (grpcurl, MessageToJson), which drop proto3 defaults otherwise."""

from typing import Any

from google.protobuf import json_format

from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.grpc.conftest import auth_for, live_db
from users.grpc.servicers import user_message
from users.models import User
from users.repository import user_get

pytestmark = live_db


def test_an_inactive_user_renders_is_active_false(user: User) -> None:
    user.is_active = False
    user.save()
    rendered = json_format.MessageToDict(user_message(user_get(user_id=str(user.id))))
    assert rendered["isActive"] is False


def test_the_first_page_renders_page_zero(users_stub: UserServiceStub, admin_user: User) -> None:
    page: Any = users_stub.ListUsers(
        users_pb2.ListUsersRequest(page=0, size=10, search="nobody-matches-this"),
        metadata=auth_for(admin_user),
    )
    rendered = json_format.MessageToDict(page)
    assert (rendered["page"], rendered["size"], int(rendered["total"])) == (0, 10, 0)
