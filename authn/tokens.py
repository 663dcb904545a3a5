"""simplejwt token classes carrying the contract's claims.

Access tokens hold ``sub`` (user id), ``roles``, ``iat``, ``exp``, ``jti``,
``token_type`` and ``sid``: the ``jti`` of the refresh token they came from,
so a password change can end every session but the caller's.
"""

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass

from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

SESSION_CLAIM = "sid"
ROLES_CLAIM = "roles"


class ArcanaRefreshToken(RefreshToken):
    @classmethod
    def issue(cls, *, user_id: str, roles: Iterable[str]) -> "ArcanaRefreshToken":
        token = cls()
        token["sub"] = user_id
        token[ROLES_CLAIM] = sorted(roles)
        return token

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
