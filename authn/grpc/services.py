"""gRPC controllers for ``arcana.v1.AuthService``: validate, call one service, render.

Register, Login and Refresh are public and throttled like their REST twins
(``arcana.grpc.interceptors.PUBLIC_METHODS``); Logout and Me need a token.
"""

import grpc
from django_grpc_framework.services import Service
from google.protobuf import empty_pb2

import authn
from arcana.grpc.interceptors import authenticated, client_address
from arcana.rest import validated
from authn.api.serializers import (
    LoginInputSerializer,
    RefreshInputSerializer,
    RegisterInputSerializer,
)
from authn.records import TokenPair
from protos.arcana.v1 import auth_pb2, users_pb2
from users.grpc.services import request_data, user_message


def token_pair_message(pair: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access=pair.access, refresh=pair.refresh, user=user_message(pair.user)
    )


class AuthService(Service):
    """Registration, login, token rotation, logout and the caller's own record."""

    def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.ServicerContext
    ) -> auth_pb2.TokenPair:
        data = validated(RegisterInputSerializer, request_data(request))
        return token_pair_message(authn.service.auth_register(**data))

    def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.ServicerContext
    ) -> auth_pb2.TokenPair:
        data = validated(LoginInputSerializer, request_data(request))
        return token_pair_message(authn.service.auth_login(client=client_address(context), **data))

    def Refresh(
        self, request: auth_pb2.RefreshRequest, context: grpc.ServicerContext
    ) -> auth_pb2.TokenPair:
        data = validated(RefreshInputSerializer, request_data(request))
        return token_pair_message(authn.service.auth_refresh(**data))

    def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        data = validated(RefreshInputSerializer, request_data(request))
        authn.service.auth_logout(actor=authenticated().actor, **data)
        return empty_pb2.Empty()

    def Me(
        self, request: auth_pb2.MeRequest, context: grpc.ServicerContext
    ) -> users_pb2.UserResponse:
        # The interceptor just loaded the caller fresh: no second read.
        return user_message(authenticated().user)
