"""DRF authentication: the bearer header and the project's user rules.

:func:`bearer_token` is the one parser of ``Authorization: Bearer <token>``;
the gRPC interceptor uses it for the ``authorization`` metadata, so both
transports fail the same input with the same error code.
"""

from dataclasses import dataclass, field

from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from arcana.core.exceptions import ApplicationError
from authn.errors import AuthorizationHeaderInvalid
from authn.services import Authenticated, access_token_authenticate
from users.records import Actor


def bearer_token(header: str | bytes | None) -> str | None:
    """The token of an ``Authorization`` value, parsed as simplejwt parses it.

    ``None`` when the caller sent no bearer credentials (no header, an empty
    one, another scheme); ``AuthorizationHeaderInvalid`` when ``Bearer`` is
    followed by no token or by more than one part.
    """
    if header is None:
        return None
    # Split bytes, as simplejwt does: only ASCII whitespace separates parts.
    raw = header.encode("latin-1", "replace") if isinstance(header, str) else header
    parts = raw.split()
    if not parts or parts[0].decode("latin-1") not in jwt_settings.AUTH_HEADER_TYPES:
        return None
    if len(parts) != 2:
        raise AuthorizationHeaderInvalid()
    return parts[1].decode("latin-1")


@dataclass(frozen=True)
class Principal:
    """``request.user`` for API calls: the caller as the database has it now."""

    auth: Authenticated
    is_authenticated: bool = field(default=True, init=False)
    is_anonymous: bool = field(default=False, init=False)

    @property
    def pk(self) -> str:
        return self.auth.user.id

    @property
    def id(self) -> str:
        return self.auth.user.id

    @property
    def actor(self) -> Actor:
        return self.auth.actor

    @property
    def session_id(self) -> str | None:
        return self.auth.session_id


class JWTAuthentication(SimpleJWTAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, str] | None:  # type: ignore[override]
        try:
            token = bearer_token(self.get_header(request))
            if token is None:
                return None  # DRF answers NotAuthenticated, as CredentialsMissing does
            auth = access_token_authenticate(token=token)
        except ApplicationError as exc:
            raise AuthenticationFailed(exc.message, code=exc.code) from None
        return Principal(auth), token
