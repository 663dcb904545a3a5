"""simplejwt token classes carrying the contract's claims.

Access tokens hold ``sub`` (user id), ``roles``, ``iat``, ``exp``, ``jti``,
``token_type`` and ``sid``: the ``jti`` of the refresh token they came from,
so a password change can end every session but the caller's.
"""

from collections.abc import Iterable

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
