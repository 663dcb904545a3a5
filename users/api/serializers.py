"""Input and output serializers for users.

Input serializers only validate shape; the rules (who may change what, email
uniqueness, password policy) live in ``users.services``. The gRPC servicers
validate with these same classes, so the two transports cannot drift.
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from users.models import Roles, SyncStatus, normalize_email, validate_normalized_email
from users.records import UserRecord


class PasswordField(serializers.CharField):
    """Passwords are taken whole: no trimming, long passphrases accepted.

    With ``policy=True`` the password validators that need no user (length,
    common, numeric) run here, so one response lists every field's problems;
    the service still runs the whole policy, similarity included.
    """

    def __init__(self, *, policy: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", settings.PASSWORD_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(**kwargs)
        if policy:
            self.validators.append(_password_policy)


def _password_policy(value: str) -> None:
    try:
        password_validation.validate_password(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(list(exc.messages)) from None


def name_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(min_length=1, max_length=255, **kwargs)


class NormalizedEmailField(serializers.EmailField):
    """An address checked in the form it is stored in.

    Normalising can lengthen an address ("İ" becomes two code points, IDNA
    turns "bücher.de" into "xn--bcher-kva.de") and turn a valid one invalid,
    so the format and length validators, which run after this, must see the
    normalised value: otherwise an address that passed them overflows the
    column (a 500 on MySQL) or is stored in a form that is no longer an email
    address. Invisible characters and domains without an IDNA form are
    refused (``validate_normalized_email``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(validate_normalized_email)

    def to_internal_value(self, data: Any) -> str:
        return normalize_email(super().to_internal_value(data))


def email_field(**kwargs: Any) -> serializers.EmailField:
    return NormalizedEmailField(max_length=254, **kwargs)


class UserOutputSerializer(serializers.Serializer[UserRecord]):
    id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Roles.choices))
    sync_status = serializers.ChoiceField(choices=SyncStatus.choices)
    is_active = serializers.BooleanField()
    email_verified = serializers.BooleanField(
        help_text="The owner has confirmed the address (POST /auth/verify-email)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _iso(moment: datetime) -> str:
    # Exactly what DRF's DateTimeField renders: UTC, with "Z".
    text = timezone.localtime(moment).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def user_json(user: UserRecord) -> dict[str, Any]:
    """A user record as the API renders it: the shape ``UserOutputSerializer``
    documents, built directly because it is on every hot path (a serializer
    instance deep-copies its fields on each use). A test holds the two equal."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "roles": list(user.roles),
        "sync_status": user.sync_status,
        "is_active": user.is_active,
        "email_verified": user.email_verified,
        "created_at": _iso(user.created_at),
        "updated_at": _iso(user.updated_at),
    }


class UserCreateInputSerializer(serializers.Serializer[dict[str, Any]]):
    name = name_field()
    email = email_field()
    password = PasswordField(policy=True)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Roles.choices), required=False, max_length=10
    )


class UserUpdateInputSerializer(serializers.Serializer[dict[str, Any]]):
    """Every field optional (PUT and PATCH alike); admin-only fields are
    refused for others by the service."""

    name = name_field(required=False)
    email = email_field(required=False)
    current_password = PasswordField(
        required=False, help_text="Required to change one's own email."
    )
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Roles.choices), required=False, max_length=10
    )
    is_active = serializers.BooleanField(required=False)
    sync_status = serializers.ChoiceField(choices=SyncStatus.choices, required=False)


class UserListQuerySerializer(serializers.Serializer[dict[str, Any]]):
    # No default: "page absent" and "page=0" differ when a cursor is sent.
    page = serializers.IntegerField(
        min_value=0,
        max_value=10_000_000,
        required=False,
        help_text=(
            "0-based page number (default 0). page * size may not exceed 10,000"
            " (400 page_too_deep): deeper, follow next_cursor. Not with cursor."
        ),
    )
    cursor = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        help_text=(
            "Keyset paging: the next_cursor of the previous page, sent with the same"
            " filters (400 cursor_filter_mismatch otherwise; invalid_cursor if changed)."
        ),
    )
    size = serializers.IntegerField(
        min_value=1, max_value=100, default=10, help_text="Users per page."
    )
    sync_status = serializers.ChoiceField(
        choices=SyncStatus.choices, required=False, help_text="Only users in this sync status."
    )
    search = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="Case-insensitive substring of the name or email.",
    )
    # default=None: absent from a query string means "either", not false.
    is_active = serializers.BooleanField(
        allow_null=True, default=None, help_text="Only active (true) or inactive (false) users."
    )


# many=False: the view's action is "list", but its body is one page object, which
# drf-spectacular would otherwise document as an array of pages.
@extend_schema_serializer(many=False)
class UserPageOutputSerializer(serializers.Serializer[Any]):
    # The contract names this key "data"; DRF's metaclass moves declared fields
    # off the class, so it does not shadow Serializer.data at run time.
    data = UserOutputSerializer(many=True, source="users")  # type: ignore[assignment]
    page = serializers.IntegerField(required=False, help_text="By offset only.")
    size = serializers.IntegerField()
    total = serializers.IntegerField(
        required=False,
        help_text=(
            "By offset only: exact up to 10,000 matches; beyond that a count at most"
            " a minute old (total_is_estimate true)."
        ),
    )
    total_is_estimate = serializers.BooleanField(required=False, help_text="By offset only.")
    next_cursor = serializers.CharField(
        allow_null=True, help_text="The cursor of the next page; null on the last page."
    )
