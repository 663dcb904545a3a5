"""Refresh-token bookkeeping on simplejwt's token_blacklist tables."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken


def refresh_token_record(
    *, jti: str, user_id: str, token: str, created_at: datetime, expires_at: datetime
) -> None:
    OutstandingToken.objects.create(
        jti=jti, user_id=user_id, token=token, created_at=created_at, expires_at=expires_at
    )


def refresh_token_revoke(*, jti: str) -> bool:
    """Blacklist one refresh token. True only for the call that revoked it, so
    of several concurrent rotations of one token exactly one wins."""
    outstanding = OutstandingToken.objects.filter(jti=jti).first()
    if outstanding is None:
        return False
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError:
        return False
    return True


def refresh_tokens_revoke_all(*, user_id: str, keep_jti: str | None = None) -> int:
    """Blacklist every live refresh token of a user (but ``keep_jti``)."""
    live = OutstandingToken.objects.filter(
        user_id=user_id, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    if keep_jti:
        live = live.exclude(jti=keep_jti)
    rows = [BlacklistedToken(token_id=token_id) for token_id in live.values_list("id", flat=True)]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def refresh_token_owner(*, jti: str) -> str | None:
    owner = OutstandingToken.objects.filter(jti=jti).values_list("user_id", flat=True).first()
    return str(owner) if owner else None
