"""REST controllers for ``/api/v1/auth``: validate, call one service, render."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import authn
import users
from arcana.core.rest import actor_of, caller_of, client_of, validated
from arcana.core.throttling import ScopedThrottle
from authn.api.serializers import (
    AcceptedOutputSerializer,
    LinkInputSerializer,
    LoginInputSerializer,
    MeUpdateInputSerializer,
    PasswordChangeInputSerializer,
    PasswordResetConfirmInputSerializer,
    PasswordResetInputSerializer,
    RefreshInputSerializer,
    RegisterInputSerializer,
    SessionListOutputSerializer,
    SessionOutputSerializer,
    TokenPairOutputSerializer,
    TokenRefreshOutputSerializer,
)
from authn.records import Authenticated, Session, TokenPair
from users.api.serializers import UserOutputSerializer, user_json
from users.records import Actor

# Token responses must never be stored by a browser or an intermediary (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_pair_json(pair: TokenPair) -> dict[str, Any]:
    if not pair.access:  # registered, but no session before the email is verified
        return {"user": user_json(pair.user)}
    return {"access": pair.access, "refresh": pair.refresh, "user": user_json(pair.user)}


class PublicView(APIView):
    """Open to anyone, rate limited per client by ``throttle_scope``."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedThrottle]


class RegisterView(PublicView):
    throttle_scope = "register"
    # Errors from the service rules, for the OpenAPI schema (arcana/openapi.py).
    error_statuses = {"post": (409,)}

    @extend_schema(
        request=RegisterInputSerializer,
        responses={201: TokenPairOutputSerializer},
        summary="Register a new user and start their first session",
    )
    def post(self, request: Request) -> Response:
        pair = authn.service.auth_register(**validated(RegisterInputSerializer, request.data))
        return Response(token_pair_json(pair), status=status.HTTP_201_CREATED, headers=NO_STORE)


class LoginView(PublicView):
    throttle_scope = "login"
    error_statuses = {"post": (401,)}

    @extend_schema(
        request=LoginInputSerializer,
        responses={200: TokenPairOutputSerializer},
        summary="Log in with email and password",
    )
    def post(self, request: Request) -> Response:
        data = validated(LoginInputSerializer, request.data)
        pair = authn.service.auth_login(client=client_of(request), **data)
        return Response(token_pair_json(pair), headers=NO_STORE)


class RefreshView(PublicView):
    throttle_scope = "refresh"
    error_statuses = {"post": (401,)}

    @extend_schema(
        request=RefreshInputSerializer,
        responses={200: TokenRefreshOutputSerializer},
        summary="Rotate a refresh token for a new token pair",
    )
    def post(self, request: Request) -> Response:
        pair = authn.service.auth_refresh(**validated(RefreshInputSerializer, request.data))
        return Response({"access": pair.access, "refresh": pair.refresh}, headers=NO_STORE)


class LogoutView(APIView):
    @extend_schema(
        request=RefreshInputSerializer,
        responses={204: None},
        summary="Log out: end the session of a refresh token",
    )
    def post(self, request: Request) -> Response:
        data = validated(RefreshInputSerializer, request.data)
        authn.service.auth_logout(actor=actor_of(request, Actor), **data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    @extend_schema(
        request=None,
        responses={204: None},
        summary="Log out everywhere: end every session of the caller",
    )
    def post(self, request: Request) -> Response:
        authn.service.auth_logout_all(actor=actor_of(request, Actor))
        return Response(status=status.HTTP_204_NO_CONTENT)


def sessions_json(sessions: list[Session]) -> dict[str, Any]:
    return {"data": [SessionOutputSerializer(session).data for session in sessions]}


class SessionsView(APIView):
    @extend_schema(
        responses={200: SessionListOutputSerializer}, summary="List the caller's live sessions"
    )
    def get(self, request: Request) -> Response:
        caller = caller_of(request, Authenticated)
        sessions = authn.service.sessions_list(actor=caller.actor, session_id=caller.session_id)
        return Response(sessions_json(sessions))


class SessionView(APIView):
    @extend_schema(request=None, responses={204: None}, summary="End one of the caller's sessions")
    def delete(self, request: Request, session: str) -> Response:
        authn.service.session_revoke(actor=actor_of(request, Actor), session=session)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: UserOutputSerializer}, summary="The caller's own user")
    def get(self, request: Request) -> Response:
        # The authenticated principal was just loaded fresh: no second read.
        return Response(user_json(caller_of(request, Authenticated).user))

    @extend_schema(
        request=MeUpdateInputSerializer,
        responses={200: UserOutputSerializer},
        summary="Change the caller's own name",
    )
    def patch(self, request: Request) -> Response:
        actor = actor_of(request, Actor)
        data = validated(MeUpdateInputSerializer, request.data)
        user = users.service.user_update(
            actor=actor, user_id=actor.id, client=client_of(request), **data
        )
        return Response(user_json(user))


class PasswordChangeView(APIView):
    @extend_schema(
        request=PasswordChangeInputSerializer,
        responses={204: None},
        summary="Change the caller's password (ends their other sessions)",
    )
    def post(self, request: Request) -> Response:
        caller = caller_of(request, Authenticated)
        data = validated(PasswordChangeInputSerializer, request.data)
        authn.service.password_change(
            actor=caller.actor,
            client=client_of(request),
            session_id=caller.session_id,
            **data,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# Whoever has the address, or nobody: one answer (and the work behind it is
# the same: the worker finds out who has it).
MAIL_ACCEPTED = {"detail": "If an account has this address, a link is on its way to it."}


class PasswordResetView(PublicView):
    throttle_scope = "password_reset"

    @extend_schema(
        request=PasswordResetInputSerializer,
        responses={202: AcceptedOutputSerializer},
        summary="Mail a password reset link (the same answer for an unknown address)",
    )
    def post(self, request: Request) -> Response:
        users.service.password_reset_request(
            **validated(PasswordResetInputSerializer, request.data)
        )
        return Response(MAIL_ACCEPTED, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(PublicView):
    throttle_scope = "password_reset_confirm"

    @extend_schema(
        request=PasswordResetConfirmInputSerializer,
        responses={204: None},
        summary="Set a new password with a reset link's uid and token (ends every session)",
    )
    def post(self, request: Request) -> Response:
        data = validated(PasswordResetConfirmInputSerializer, request.data)
        users.service.password_reset_confirm(**data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerifyEmailView(PublicView):
    throttle_scope = "verify_email"
    error_statuses = {"post": (409,)}

    @extend_schema(
        request=LinkInputSerializer,
        responses={204: None},
        summary="Confirm an email address with a verification link's uid and token",
    )
    def post(self, request: Request) -> Response:
        users.service.email_verify(**validated(LinkInputSerializer, request.data))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerifyEmailResendView(PublicView):
    throttle_scope = "verify_email_resend"

    @extend_schema(
        request=PasswordResetInputSerializer,
        responses={202: AcceptedOutputSerializer},
        summary="Mail a new verification link (the same answer for any address)",
    )
    def post(self, request: Request) -> Response:
        data = validated(PasswordResetInputSerializer, request.data)
        users.service.email_verification_resend(**data)
        return Response(MAIL_ACCEPTED, status=status.HTTP_202_ACCEPTED)
