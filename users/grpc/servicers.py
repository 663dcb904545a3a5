"""The gRPC servicer of ``arcana.v1.UserService`` (a controller): validate, call
one service, render.

Requests are validated by the REST serializers, so both transports accept and
reject exactly the same input; errors become statuses in ``arcana.grpc.errors``.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from django_grpc_framework.services import Service
from google.protobuf import empty_pb2
from google.protobuf.message import Message

import users
from arcana.core.grpc import ReadAheadOf, client_address, current_actor
from arcana.core.grpc_compat import message_to_dict
from arcana.core.rest import validated
from protos.arcana.v1 import users_pb2
from users.api.serializers import (
    UserCreateInputSerializer,
    UserListQuerySerializer,
    UserUpdateInputSerializer,
)
from users.records import READ_AHEAD_USER, Actor, UserRecord

SERVICE = users_pb2.DESCRIPTOR.services_by_name["UserService"]
# The user each method is about to read, announced before authentication
# (arcana.core.grpc.read_ahead_declare), as users.api.views does for REST.
READ_AHEAD: Mapping[str, ReadAheadOf] = {
    "GetUser": lambda request: ((READ_AHEAD_USER, request.id),),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_millis(moment: datetime) -> int:
    """Exact (no float rounding) epoch milliseconds of an aware datetime."""
    return (moment - _EPOCH) // _MILLISECOND


def user_message(user: UserRecord) -> users_pb2.UserResponse:
    """The one record -> message converter, shared with ``authn.grpc``."""
    return users_pb2.UserResponse(
        id=user.id,
        name=user.name,
        email=user.email,
        roles=list(user.roles),
        sync_status=user.sync_status,
        is_active=user.is_active,
        email_verified=user.email_verified,
        created_at=epoch_millis(user.created_at),
        updated_at=epoch_millis(user.updated_at),
    )


def request_data(message: Message, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A request as the dict its REST serializer takes (``RoleList`` -> list)."""
    data = message_to_dict(message)
    for name in exclude:
        data.pop(name, None)
    if "roles" in data:  # a set RoleList means "exactly these", possibly none
        data["roles"] = data["roles"].get("values", [])
    return data


class UserServicer(Service):
    """Admins manage everyone; a user may read and update themself."""

    def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.UserResponse:
        user = users.service.user_get(actor=current_actor(Actor), user_id=request.id)
        return user_message(user)

    def ListUsers(
        self, request: users_pb2.ListUsersRequest, context: grpc.ServicerContext
    ) -> users_pb2.ListUsersResponse:
        query = validated(UserListQuerySerializer, request_data(request))
        page = users.service.user_list(actor=current_actor(Actor), **query)
        # None leaves an optional field unset: by cursor, no page or total.
        return users_pb2.ListUsersResponse(
            users=[user_message(user) for user in page.users],
            total=page.total,
            page=page.page,
            size=page.size,
            next_cursor=page.next_cursor,
            total_is_estimate=page.total_is_estimate if page.page is not None else None,
        )

    def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.UserResponse:
        data = validated(UserCreateInputSerializer, request_data(request))
        return user_message(users.service.user_create_by(actor=current_actor(Actor), **data))

    def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.UserResponse:
        data = validated(UserUpdateInputSerializer, request_data(request, exclude=("id",)))
        user = users.service.user_update(
            actor=current_actor(Actor), user_id=request.id, client=client_address(context), **data
        )
        return user_message(user)

    def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        users.service.user_delete(actor=current_actor(Actor), user_id=request.id)
        return empty_pb2.Empty()
