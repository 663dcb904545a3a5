"""simplejwt token classes carrying the contract's claims.

Access tokens hold ``sub`` (user id), ``roles``, ``iat``, ``exp``, ``jti``,
``token_type`` and ``sid``: the ``jti`` of the refresh token they came from,
so a password change can end every session but the caller's.

Refresh tokens also hold ``fam``: the ``jti`` of the login (or registration)
token that started their rotation chain. A rotated token inherits it, so when
a rotated token comes back (RFC 9700 §4.14.2) every token of its family can be
found and revoked. Tokens issued before the claim existed are their own family.

Both token classes sign and verify through :func:`token_backend`: simplejwt's
backend built from the current ``SIMPLE_JWT`` (simplejwt builds its own once,
at import, so ``override_settings`` would not reach it), which also puts the
``kid`` of the published key (arcana/core/jwtkeys.py) in asymmetric tokens' header.
"""

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver
from django.test.signals import setting_changed
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

import authn
from arcana.core.jwtkeys import public_jwk

SESSION_CLAIM = "sid"
ROLES_CLAIM = "roles"
FAMILY_CLAIM = "fam"


class RefreshTokenReused(TokenError):
    """A validly signed, unexpired refresh token that is already blacklisted
    (rotated or logged out) was presented again."""

    def __init__(self, *, family: str) -> None:
        super().__init__("Token is blacklisted")
        self.family = family


class ArcanaTokenBackend(TokenBackend):
    """simplejwt's backend; asymmetric tokens also name their key (``kid``).

    ``jwk`` is the verifying key as a public JWK (``None`` with HS256, whose
    key is a secret); a process given only the public key cannot mint.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jwk: dict[str, str] | None = None
        if not self.algorithm.startswith("HS") and self.verifying_key:
            self.jwk = public_jwk(self.verifying_key, self.algorithm)

    def encode(self, payload: dict[str, Any]) -> str:
        if self.jwk is None:
            return super().encode(payload)
        if not self.signing_key:
            raise ImproperlyConfigured(
                "This process has JWT_PUBLIC_KEY but not JWT_PRIVATE_KEY: "
                "it verifies tokens and cannot mint them."
            )
        # simplejwt's encode, plus the header.
        claims = payload.copy()
        if self.audience is not None:
            claims["aud"] = self.audience
        if self.issuer is not None:
            claims["iss"] = self.issuer
        return jwt.encode(
            claims,
            self.prepared_signing_key,
            algorithm=self.algorithm,
            headers={"kid": self.jwk["kid"]},
            json_encoder=self.json_encoder,
        )


@functools.cache
def token_backend() -> ArcanaTokenBackend:
    """The backend for the current ``SIMPLE_JWT`` settings."""
    jwt_settings = simplejwt_settings.api_settings  # rebound when SIMPLE_JWT changes
    return ArcanaTokenBackend(
        jwt_settings.ALGORITHM,
        jwt_settings.SIGNING_KEY,
        jwt_settings.VERIFYING_KEY,
        jwt_settings.AUDIENCE,
        jwt_settings.ISSUER,
        jwt_settings.JWK_URL,
        jwt_settings.LEEWAY,
        jwt_settings.JSON_ENCODER,
    )


def published_jwks() -> dict[str, list[dict[str, str]]] | None:
    """The JWK Set of the key tokens are verified with, or ``None`` with HS256."""
    jwk = token_backend().jwk
    return None if jwk is None else {"keys": [jwk]}


class ArcanaAccessToken(AccessToken):
    @property
    def token_backend(self) -> TokenBackend:
        return token_backend()


class ArcanaRefreshToken(RefreshToken):
    # The family is the refresh token's business; access tokens keep the contract's claims.
    no_copy_claims = (*RefreshToken.no_copy_claims, FAMILY_CLAIM)  # type: ignore[assignment]
    access_token_class = ArcanaAccessToken

    @property
    def token_backend(self) -> TokenBackend:
        return token_backend()

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

    def check_blacklist(self) -> None:
        """simplejwt's check, asked of ``authn.repo``: where the token tables
        live is the repository's business (another tier in layered mode)."""
        if authn.repo.refresh_token_revoked(jti=str(self["jti"])):
            raise TokenError("Token is blacklisted")

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
    access = ArcanaAccessToken(token)  # type: ignore[arg-type]  # simplejwt accepts str
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


@receiver(setting_changed)
def _jwt_settings_changed(*, setting: str, **kwargs: Any) -> None:
    """Tests that override ``SIMPLE_JWT`` get a backend, and verdicts, of the new keys."""
    if setting == "SIMPLE_JWT":
        token_backend.cache_clear()
        _verified.cache_clear()
