"""authn's two boundaries, as typed interfaces (see ``users.interfaces`` for
why Protocols matched by the modules of functions themselves).

``AuthServiceInterface`` is what controllers (REST, gRPC, the Django auth
backend) and users' ``password_changed`` receiver call; access tokens are not
checked through it but where the request arrives (``authn.authentication``:
the signature needs only the public key, and the user behind the claims
comes from ``users.service``, so no deployment pays a hop through authn for
it); ``AuthRepositoryInterface`` is
what ``authn.services`` calls for the refresh-token tables. authn in turn
reaches users only through ``users.service``.
"""

from datetime import datetime
from typing import Protocol

from authn.records import Session, TokenPair
from users.records import Actor, UserRecord


class AuthServiceInterface(Protocol):
    """Registration, login, tokens, sessions, passwords (``authn.services``)."""

    def auth_register(self, *, name: str, email: str, password: str) -> TokenPair: ...

    def auth_login(self, *, email: str, password: str, client: str) -> TokenPair: ...

    def auth_refresh(self, *, refresh: str) -> TokenPair: ...

    def auth_logout(self, *, actor: Actor, refresh: str) -> None: ...

    def auth_logout_all(self, *, actor: Actor) -> int: ...

    def password_change(
        self,
        *,
        actor: Actor,
        client: str,
        current_password: str,
        new_password: str,
        session_id: str | None = None,
    ) -> None: ...

    def credentials_verify(self, *, email: str, password: str, client: str) -> UserRecord: ...

    def user_sessions_end(self, *, user_id: str, keep_session: str | None = None) -> int: ...

    def tokens_flush_expired(self) -> int: ...

    def sessions_list(self, *, actor: Actor, session_id: str | None) -> list[Session]: ...

    def session_revoke(self, *, actor: Actor, session: str) -> None: ...

    def sessions_revoke(self, *, sessions: list[str]) -> int: ...


class AuthRepositoryInterface(Protocol):
    """Refresh-token bookkeeping (``authn.repository``); each call commits on
    its own or inside the one transaction it opens."""

    def refresh_token_record(
        self,
        *,
        jti: str,
        user_id: str,
        token: str,
        created_at: datetime,
        expires_at: datetime,
        family: str | None = None,
    ) -> None: ...

    def refresh_token_rotate(
        self,
        *,
        revoke_jti: str,
        jti: str,
        user_id: str,
        token: str,
        created_at: datetime,
        expires_at: datetime,
        family: str,
    ) -> bool: ...

    def refresh_token_revoked(self, *, jti: str) -> bool: ...

    def refresh_token_family_revoke(self, *, family: str) -> int: ...

    def refresh_tokens_revoke_all(self, *, user_id: str, keep_jti: str | None = None) -> int: ...

    def refresh_tokens_flush_expired(self) -> int: ...

    def sessions_live(self, *, user_id: str, current_jti: str | None = None) -> list[Session]: ...

    def session_end(self, *, user_id: str, session_id: str) -> bool: ...
