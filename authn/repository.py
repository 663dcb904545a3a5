"""Refresh-token bookkeeping (``authn.models.RefreshToken``).

Plain values in and out; every function commits on its own (or inside the
one transaction it opens), so no transaction crosses into the services.
Revocation is a conditional ``UPDATE ... WHERE revoked_at IS NULL``: the
database decides which of several concurrent calls revoked a token.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import Min, QuerySet
from django.utils import timezone

from authn.models import RefreshToken
from authn.records import Session


def refresh_token_record(
    *,
    jti: str,
    user_id: str,
    token: str,
    created_at: datetime,
    expires_at: datetime,
    family: str | None = None,
) -> None:
    """Record a new refresh token of ``family`` (its own ``jti`` for a login's)."""
    RefreshToken.objects.create(
        jti=jti,
        user_id=user_id,
        family=family or jti,
        token=token,
        created_at=created_at,
        expires_at=expires_at,
    )


def refresh_token_rotate(
    *,
    revoke_jti: str,
    jti: str,
    user_id: str,
    token: str,
    created_at: datetime,
    expires_at: datetime,
    family: str,
) -> bool:
    """Revoke one refresh token and record its successor, in one transaction.

    False (and nothing recorded) when the token was already revoked: of
    several concurrent rotations of one token exactly one wins. A failure
    recording the successor rolls the revocation back, so the old token still
    works and the rotation can be retried.
    """
    with transaction.atomic():
        if not refresh_token_revoke(jti=revoke_jti):
            return False
        refresh_token_record(
            jti=jti,
            user_id=user_id,
            token=token,
            created_at=created_at,
            expires_at=expires_at,
            family=family,
        )
    return True


def _live() -> "QuerySet[RefreshToken]":
    return RefreshToken.objects.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def refresh_token_revoke(*, jti: str) -> bool:
    """Revoke one refresh token. True only for the call that revoked it."""
    return (
        RefreshToken.objects.filter(jti=jti, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        == 1
    )


def refresh_token_revoked(*, jti: str) -> bool:
    """Whether the refresh token ``jti`` is revoked (rotated or logged out)."""
    return RefreshToken.objects.filter(jti=jti, revoked_at__isnull=False).exists()


def refresh_token_family_revoke(*, family: str) -> int:
    """Revoke every live refresh token of a family; returns how many.

    Repeats until an update finds no live member: a rotation within the
    family that is in flight meanwhile holds its parent's row, so the update
    waits for it to commit, and the next round revokes the token it added.
    A rotation that starts later finds its parent revoked and loses.
    """
    revoked = 0
    while True:
        count = _live().filter(family=family).update(revoked_at=timezone.now())
        if not count:
            return revoked
        revoked += count


def refresh_tokens_revoke_all(*, user_id: str, keep_jti: str | None = None) -> int:
    """Revoke every live refresh token of a user but those of the session
    (family) that ``keep_jti`` belongs to: the caller's access token may come
    from a refresh token its client has rotated since."""
    live = _live().filter(user_id=user_id)
    if keep_jti:
        family = RefreshToken.objects.filter(jti=keep_jti).values_list("family", flat=True).first()
        live = live.exclude(family=family or keep_jti)
    return live.update(revoked_at=timezone.now())


def sessions_live(*, user_id: str, current_jti: str | None = None) -> list[Session]:
    """The user's live sessions, newest first: one per family with a live
    refresh token; ``current`` marks the family ``current_jti`` belongs to
    (the caller's access token may come from a token rotated since)."""
    live = list(
        _live().filter(user_id=user_id).values_list("family", "expires_at").order_by("-created_at")
    )
    families = [family for family, _ in live]
    started = dict(
        RefreshToken.objects.filter(family__in=families)
        .values("family")
        .annotate(start=Min("created_at"))
        .values_list("family", "start")
    )
    current = None
    if current_jti:
        current = (
            RefreshToken.objects.filter(jti=current_jti).values_list("family", flat=True).first()
        )
    return [
        Session(
            id=family,
            created_at=started[family],
            expires_at=expires_at,
            current=family == current,
        )
        for family, expires_at in live
    ]


def session_end(*, user_id: str, session_id: str) -> bool:
    """End the user's live session ``session_id`` (its family); False when the
    user has no such live session."""
    if not _live().filter(user_id=user_id, family=session_id).exists():
        return False
    refresh_token_family_revoke(family=session_id)
    return True


def refresh_token_owner(*, jti: str) -> str | None:
    owner = RefreshToken.objects.filter(jti=jti).values_list("user_id", flat=True).first()
    return str(owner) if owner else None


def refresh_tokens_flush_expired() -> int:
    """Delete the rows of expired tokens (``manage.py flushexpiredtokens``)."""
    deleted, _ = RefreshToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
