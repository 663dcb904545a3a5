"""DRF authentication: simplejwt's header parsing, the project's user rules."""

from dataclasses import dataclass, field

from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from arcana.exceptions import ApplicationError
from authn.services import Authenticated, access_token_authenticate
from users.records import Actor


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
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None:
            return None
        token = raw.decode("latin-1")
        try:
            auth = access_token_authenticate(token=token)
        except ApplicationError as exc:
            raise AuthenticationFailed(exc.message, code=exc.code) from None
        return Principal(auth), token
