"""REST controllers for ``/api/v1/users``: validate, call one service, render."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

import users
from arcana.core.context import read_ahead_announce
from arcana.core.rest import actor_of, client_of, validated
from users.api.serializers import (
    UserCreateInputSerializer,
    UserListQuerySerializer,
    UserOutputSerializer,
    UserPageOutputSerializer,
    UserUpdateInputSerializer,
    user_json,
)
from users.records import READ_AHEAD_USER, Actor

ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="User id (UUID)."
)


class UserViewSet(viewsets.ViewSet):
    """Admins manage everyone; a user may read and update themself."""

    lookup_field = "id"
    lookup_value_regex = "[^/]+"  # malformed ids reach the service and 404 there
    # Errors from the service rules, for the OpenAPI schema (arcana/openapi.py).
    error_statuses = {
        "list": (403,),
        "create": (403, 409),
        "update": (403, 409),
        "partial_update": (403, 409),
        "destroy": (403,),
    }

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before authentication reads the caller: the user a read is about to
        # load comes back in the same cache round trip (users.repository).
        if self.action == "retrieve" and "id" in kwargs:
            read_ahead_announce(READ_AHEAD_USER, str(kwargs["id"]))
        super().initial(request, *args, **kwargs)

    @extend_schema(
        parameters=[UserListQuerySerializer],
        responses={200: UserPageOutputSerializer},
        summary="List users, a page at a time (admins)",
    )
    def list(self, request: Request) -> Response:
        query = validated(UserListQuerySerializer, request.query_params)
        page = users.service.user_list(actor=actor_of(request, Actor), **query)
        body: dict[str, Any] = {"data": [user_json(user) for user in page.users]}
        if page.page is not None:  # by offset
            body.update(page=page.page, total=page.total, total_is_estimate=page.total_is_estimate)
        body.update(size=page.size, next_cursor=page.next_cursor)
        return Response(body)

    @extend_schema(
        request=UserCreateInputSerializer,
        responses={201: UserOutputSerializer},
        summary="Create a user (admins)",
    )
    def create(self, request: Request) -> Response:
        data = validated(UserCreateInputSerializer, request.data)
        user = users.service.user_create_by(actor=actor_of(request, Actor), **data)
        return Response(user_json(user), status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[ID_PARAMETER],
        responses={200: UserOutputSerializer},
        summary="One user (admins, or the user themself)",
    )
    def retrieve(self, request: Request, id: str) -> Response:
        user = users.service.user_get(actor=actor_of(request, Actor), user_id=id)
        return Response(user_json(user))

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=UserUpdateInputSerializer,
        responses={200: UserOutputSerializer},
        summary="Update a user (admins, or the user themself; any subset of fields)",
    )
    def update(self, request: Request, id: str, **kwargs: Any) -> Response:
        data = validated(UserUpdateInputSerializer, request.data)
        user = users.service.user_update(
            actor=actor_of(request, Actor), user_id=id, client=client_of(request), **data
        )
        return Response(user_json(user))

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=UserUpdateInputSerializer,
        responses={200: UserOutputSerializer},
        summary="Update some fields of a user (admins, or the user themself)",
    )
    def partial_update(self, request: Request, id: str) -> Response:
        return self.update(request, id)

    @extend_schema(
        parameters=[ID_PARAMETER], responses={204: None}, summary="Delete a user (admins)"
    )
    def destroy(self, request: Request, id: str) -> Response:
        users.service.user_delete(actor=actor_of(request, Actor), user_id=id)
        return Response(status=status.HTTP_204_NO_CONTENT)
