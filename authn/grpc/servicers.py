"""The gRPC servicer of ``arcana.v1.AuthService`` (a controller): validate, call
one service, render.

Register, Login, Refresh and the account-mail methods (password reset, email
verification) are public and throttled like their REST twins
(:data:`PUBLIC_METHODS`, declared in ``authn.apps``); every other method
needs a token.
"""

import grpc
from django_grpc_framework.services import Service
from google.protobuf import empty_pb2

import authn
import users
from arcana.core.grpc import client_address, current_actor, current_caller
from arcana.core.rest import validated
from authn.api import views
from authn.api.serializers import (
    LinkInputSerializer,
    LoginInputSerializer,
    MeUpdateInputSerializer,
    PasswordChangeInputSerializer,
    PasswordResetConfirmInputSerializer,
    PasswordResetInputSerializer,
    RefreshInputSerializer,
    RegisterInputSerializer,
)
from authn.records import Authenticated, Session, TokenPair
from protos.arcana.v1 import auth_pb2, users_pb2
from users.grpc.servicers import epoch_millis, request_data, user_message
from users.records import Actor

SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
# Methods anyone may call, each throttled with the scope of its REST twin.
PUBLIC_METHODS = {
    "Register": views.RegisterView.throttle_scope,
    "Login": views.LoginView.throttle_scope,
    "Refresh": views.RefreshView.throttle_scope,
    "RequestPasswordReset": views.PasswordResetView.throttle_scope,
    "ConfirmPasswordReset": views.PasswordResetConfirmView.throttle_scope,
    "VerifyEmail": views.VerifyEmailView.throttle_scope,
    "ResendVerificationEmail": views.VerifyEmailResendView.throttle_scope,
}


def token_pair_message(pair: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access=pair.access, refresh=pair.refresh, user=user_message(pair.user)
    )


def session_message(session: Session) -> auth_pb2.Session:
    return auth_pb2.Session(
        id=session.id,
        created_at=epoch_millis(session.created_at),
        expires_at=epoch_millis(session.expires_at),
        current=session.current,
    )


class AuthServicer(Service):
    """Registration, login, token rotation, logout, the caller's own record and
    password."""

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
        authn.service.auth_logout(actor=current_actor(Actor), **data)
        return empty_pb2.Empty()

    def LogoutAll(
        self, request: auth_pb2.LogoutAllRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        authn.service.auth_logout_all(actor=current_actor(Actor))
        return empty_pb2.Empty()

    def ListSessions(
        self, request: auth_pb2.ListSessionsRequest, context: grpc.ServicerContext
    ) -> auth_pb2.ListSessionsResponse:
        caller = current_caller(Authenticated)
        sessions = authn.service.sessions_list(actor=caller.actor, session_id=caller.session_id)
        return auth_pb2.ListSessionsResponse(sessions=[session_message(s) for s in sessions])

    def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        authn.service.session_revoke(actor=current_actor(Actor), session=request.id)
        return empty_pb2.Empty()

    def Me(
        self, request: auth_pb2.MeRequest, context: grpc.ServicerContext
    ) -> users_pb2.UserResponse:
        # The interceptor just loaded the caller fresh: no second read.
        return user_message(current_caller(Authenticated).user)

    def UpdateMe(
        self, request: auth_pb2.UpdateMeRequest, context: grpc.ServicerContext
    ) -> users_pb2.UserResponse:
        actor = current_actor(Actor)
        data = validated(MeUpdateInputSerializer, request_data(request))
        user = users.service.user_update(
            actor=actor, user_id=actor.id, client=client_address(context), **data
        )
        return user_message(user)

    def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        caller = current_caller(Authenticated)
        data = validated(PasswordChangeInputSerializer, request_data(request))
        authn.service.password_change(
            actor=caller.actor,
            client=client_address(context),
            session_id=caller.session_id,
            **data,
        )
        return empty_pb2.Empty()

    def RequestPasswordReset(
        self, request: auth_pb2.PasswordResetRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        data = validated(PasswordResetInputSerializer, request_data(request))
        users.service.password_reset_request(**data)
        return empty_pb2.Empty()

    def ConfirmPasswordReset(
        self, request: auth_pb2.ConfirmPasswordResetRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        users.service.password_reset_confirm(
            **validated(PasswordResetConfirmInputSerializer, request_data(request))
        )
        return empty_pb2.Empty()

    def VerifyEmail(
        self, request: auth_pb2.VerifyEmailRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        users.service.email_verify(**validated(LinkInputSerializer, request_data(request)))
        return empty_pb2.Empty()

    def ResendVerificationEmail(
        self, request: auth_pb2.ResendVerificationEmailRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        data = validated(PasswordResetInputSerializer, request_data(request))
        users.service.email_verification_resend(**data)
        return empty_pb2.Empty()
