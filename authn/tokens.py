"""simplejwt token classes carrying the contract's claims.

Access tokens hold ``sub`` (user id), ``roles``, ``iat``, ``exp``, ``jti``,
``token_type`` and ``sid``: the ``jti`` of the refresh token they came from,
so a password change can end every session but the caller's.

Refresh tokens also hold ``fam``: the ``jti`` of the login (or registration)
token that started their rotation chain. A rotated token inherits it, so when
a rotated token comes back (RFC 9700 §4.14.2) every token of its family can be
found and revoked. Tokens issued before the claim existed are their own family.
"""

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass

from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

SESSION_CLAIM = "sid"
ROLES_CLAIM = "roles"
FAMILY_CLAIM = "fam"


class RefreshTokenReused(TokenError):
    """A validly signed, unexpired refresh token that is already blacklisted
    (rotated or logged out) was presented again."""

    def __init__(self, *, family: str) -> None:
        super().__init__("Token is blacklisted")
        self.family = family


class ArcanaRefreshToken(RefreshToken):
    # The family is the refresh token's business; access tokens keep the contract's claims.
    no_copy_claims = (*RefreshToken.no_copy_claims, FAMILY_CLAIM)  # type: ignore[assignment]

    @classmethod
    def issue(
        cls, *, user_id: str, roles: Iterable[str], family: str | None = None
    ) -> "ArcanaRefreshToken":
        """A new refresh token; ``family`` is the rotated token's, or none for a login."""
        token = cls()
        token["sub"] = user_id
        token[ROLES_CLAIM] = sorted(roles)
        token[FAMILY_CLAIM] = family or token["jti"]
        return token

    @property
    def family(self) -> str:
        return str(self.get(FAMILY_CLAIM) or self["jti"])

    def verify(self) -> None:
        """simplejwt's checks in the other order: expiry, type and jti first, the
        blacklist last, so that a blacklisted token raises ``RefreshTokenReused``
        only when it is otherwise a genuine, live refresh token."""
        Token.verify(self)
        try:
            self.check_blacklist()
        except TokenError:
            raise RefreshTokenReused(family=self.family) from None

    @property
    def access_token(self) -> AccessToken:
        access = super().access_token
        access[SESSION_CLAIM] = self["jti"]
        return access


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str | None
    session_id: str | None
    expires_at: float


@functools.lru_cache(maxsize=4096)
def _verified(token: str) -> AccessClaims:
    # Raises TokenError for a bad token, which lru_cache does not remember:
    # only tokens this service signed can take a slot.
    access = AccessToken(token)  # type: ignore[arg-type]  # simplejwt accepts str
    return AccessClaims(
        user_id=access.get("sub"),
        session_id=access.get(SESSION_CLAIM),
        expires_at=float(access["exp"]),
    )


def access_claims(token: str, *, now: float | None = None) -> AccessClaims:
    """The claims of a valid access token, or ``TokenError``.

    Signature and token type cannot change for a given token string, so they
    are verified once per string and process (decoding costs about as much as
    the rest of a cached read); expiry is checked on every call.
    """
    claims = _verified(token)
    if claims.expires_at <= (time.time() if now is None else now):
        raise TokenError("Token is expired")
    return claims
