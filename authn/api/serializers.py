"""Input and output serializers for ``/api/v1/auth``."""

from typing import Any

from rest_framework import serializers

from authn.records import Session
from authn.services import TokenPair
from users.api.serializers import PasswordField, UserOutputSerializer, email_field, name_field


class RegisterInputSerializer(serializers.Serializer[dict[str, Any]]):
    name = name_field()
    email = email_field()
    password = PasswordField(policy=True)


class LoginInputSerializer(serializers.Serializer[dict[str, Any]]):
    # A plain string: a malformed address is just an unknown one (401, not 400).
    email = serializers.CharField(max_length=254)
    password = PasswordField()


class RefreshInputSerializer(serializers.Serializer[dict[str, Any]]):
    refresh = serializers.CharField(max_length=4096)


class MeUpdateInputSerializer(serializers.Serializer[dict[str, Any]]):
    """``name`` only, and optional: other fields (``email``, ``roles``, ...) are
    ignored, as README says, and an empty body changes nothing (200)."""

    name = name_field(required=False)


class PasswordChangeInputSerializer(serializers.Serializer[dict[str, Any]]):
    current_password = PasswordField()
    new_password = PasswordField(policy=True)


class TokenPairOutputSerializer(serializers.Serializer[TokenPair]):
    access = serializers.CharField()
    refresh = serializers.CharField()
    user = UserOutputSerializer()


class TokenRefreshOutputSerializer(serializers.Serializer[TokenPair]):
    access = serializers.CharField()
    refresh = serializers.CharField()


class SessionOutputSerializer(serializers.Serializer[Session]):
    """One live session (``GET /auth/sessions``)."""

    id = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    current = serializers.BooleanField()


class SessionListOutputSerializer(serializers.Serializer[list[Session]]):
    data = SessionOutputSerializer(many=True)  # type: ignore[assignment]


class PasswordResetInputSerializer(serializers.Serializer[dict[str, Any]]):
    email = email_field()


class LinkInputSerializer(serializers.Serializer[dict[str, Any]]):
    """The ``uid`` and ``token`` query parameters of a mailed link."""

    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)


class PasswordResetConfirmInputSerializer(LinkInputSerializer):
    new_password = PasswordField(policy=True)


class AcceptedOutputSerializer(serializers.Serializer[dict[str, str]]):
    """The one answer of the mail-sending endpoints, whoever has the address."""

    detail = serializers.CharField()
