"""Refresh-token bookkeeping on simplejwt's token_blacklist tables, and the
family of each rotated token (authn.models.RefreshTokenLineage).

Plain values in and out; every function commits on its own (or inside the
one transaction it opens), so no transaction crosses into the services."""

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from authn.models import RefreshTokenLineage


def refresh_token_record(
    *,
    jti: str,
    user_id: str,
    token: str,
    created_at: datetime,
    expires_at: datetime,
    family: str | None = None,
) -> None:
    """Record a new refresh token; a rotated one (``family`` other than its own
    ``jti``) also gets its lineage row."""
    OutstandingToken.objects.create(
        jti=jti, user_id=user_id, token=token, created_at=created_at, expires_at=expires_at
    )
    if family and family != jti:
        RefreshTokenLineage.objects.create(token_id=jti, family=family)


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


def _blacklist(token_ids: Iterable[int]) -> int:
    rows = [BlacklistedToken(token_id=token_id) for token_id in token_ids]
    # A row another call inserted first is that call's revocation, not an error.
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _family_of(jti: str) -> str:
    family = RefreshTokenLineage.objects.filter(token__jti=jti).values_list("family", flat=True)
    return family.first() or jti


def refresh_token_family_revoke(*, family: str) -> int:
    """Blacklist every live refresh token of a family; returns how many.

    Repeats until a read finds no live member. A rotation within the family
    that is in flight meanwhile has inserted, uncommitted, its parent's
    blacklist row: the insert here waits for that rotation to commit, and the
    next read sees its new token. ``seen`` keeps the loop finite whatever the
    isolation level.
    """
    seen: set[int] = set()
    while True:
        descendants = RefreshTokenLineage.objects.filter(family=family)
        jtis = [family, *descendants.values_list("token_id", flat=True)]
        live = OutstandingToken.objects.filter(
            jti__in=jtis, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
        )
        token_ids = set(live.exclude(id__in=seen).values_list("id", flat=True))
        if not token_ids:
            return len(seen)
        _blacklist(token_ids)
        seen |= token_ids


def refresh_tokens_revoke_all(*, user_id: str, keep_jti: str | None = None) -> int:
    """Blacklist every live refresh token of a user but those of the session
    (family) that ``keep_jti`` belongs to: the caller's access token may come
    from a refresh token its client has rotated since."""
    live = OutstandingToken.objects.filter(
        user_id=user_id, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    if keep_jti:
        family = _family_of(keep_jti)
        live = live.exclude(jti=family).exclude(lineage__family=family)
    return _blacklist(live.values_list("id", flat=True))


def refresh_token_revoked(*, jti: str) -> bool:
    """Whether the refresh token ``jti`` is blacklisted (rotated or logged out)."""
    return BlacklistedToken.objects.filter(token__jti=jti).exists()


def refresh_token_owner(*, jti: str) -> str | None:
    owner = OutstandingToken.objects.filter(jti=jti).values_list("user_id", flat=True).first()
    return str(owner) if owner else None
