"""Authentication on both transports: the bearer header and the project's user rules.

:func:`bearer_token` is the one parser of ``Authorization: Bearer <token>``.
REST uses it through :class:`JWTAuthentication` (``DEFAULT_AUTHENTICATION_CLASSES``),
gRPC through :func:`authorization_authenticate` (``ARCANA_AUTHENTICATOR``) for
the ``authorization`` metadata, so both transports fail the same input with
the same error code.
"""

from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from arcana.core.context import acting_user
from arcana.core.exceptions import ApplicationError, Unavailable
from arcana.core.principal import Principal
from authn.errors import AuthorizationHeaderInvalid, CredentialsMissing
from authn.records import Authenticated
from authn.services import access_token_verify, access_user


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


def token_authenticate(token: str) -> Authenticated:
    """The caller behind an access token, checked in the process that received
    it, whatever the deployment: the signature and expiry need only the public
    key, so a forged or expired token never costs an internal call, and the
    user behind valid claims comes from ``users.service`` (one hop from layered
    mode's controller tier, none where users' data is local)."""
    claims = access_token_verify(token=token)  # refuses claims without a user id
    auth = access_user(user_id=claims.user_id or "", session_id=claims.session_id)
    # Named on every internal call from here on; the edge's call_context ends it.
    acting_user.set(auth.user.id)
    return auth


def authorization_authenticate(*, authorization: str | None) -> Authenticated:
    """The caller behind an ``authorization`` value: ``Bearer <access token>``.

    ``settings.ARCANA_AUTHENTICATOR`` for gRPC. Raises ``CredentialsMissing``
    when no bearer credentials were sent, as DRF answers ``NotAuthenticated``.
    """
    token = bearer_token(authorization)
    if token is None:
        raise CredentialsMissing()
    return token_authenticate(token)


class JWTAuthentication(SimpleJWTAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, str] | None:  # type: ignore[override]
        try:
            token = bearer_token(self.get_header(request))
            if token is None:
                return None  # DRF answers NotAuthenticated, as CredentialsMissing does
            auth = token_authenticate(token)
        except Unavailable:
            raise  # the tier behind is down: 503, not a verdict on the credentials
        except ApplicationError as exc:
            raise AuthenticationFailed(exc.message, code=exc.code) from None
        return Principal(auth), token
