"""Authentication: registration, login, token rotation, logout, passwords.

Tokens are simplejwt's; these functions add the rules around them: the user
must exist and be active at every step, roles always come from the database,
and a refresh token works exactly once. A refresh token presented again after
it was rotated or logged out ends its whole family (RFC 9700 §4.14.2).

No function here holds a transaction: each repository call (authn's, and
users' behind ``users.service``) commits on its own. Work of two steps is
ordered so that a failure between them leaves a safe state and the whole can
be retried; each such place says which state.
"""

from django.conf import settings
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.utils import datetime_from_epoch

import authn
import users
from arcana.core import lockout, metrics
from arcana.core.exceptions import InvalidInput
from arcana.core.ratelimit import rate_limit
from authn.errors import EmailNotVerified, InvalidCredentials, SessionNotFound, TokenInvalid
from authn.records import Authenticated as Authenticated  # re-exported: callers found it here
from authn.records import Session
from authn.records import TokenPair as TokenPair
from authn.tokens import AccessClaims, ArcanaRefreshToken, RefreshTokenReused, access_claims
from users.errors import UserNotFound
from users.normal import normalize_email
from users.records import Actor, UserRecord


def _pair(refresh: ArcanaRefreshToken, user: UserRecord) -> TokenPair:
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh), user=user)


def token_pair_issue(*, user: UserRecord) -> TokenPair:
    """A new pair: a new session, its own family."""
    refresh = ArcanaRefreshToken.issue(user_id=user.id, roles=user.roles)
    authn.repo.refresh_token_record(
        jti=refresh["jti"],
        user_id=user.id,
        token=str(refresh),
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
        family=refresh.family,
    )
    return _pair(refresh, user)


NO_USER_ID = "Token contained no recognizable user identification."


def _active_user(user_id: str | None) -> UserRecord:
    if not user_id:
        raise TokenInvalid(NO_USER_ID)
    # One error for a deleted and a deactivated user: a token holder learns
    # nothing about the account behind it.
    try:
        user = users.service.user_record(user_id=str(user_id))
    except UserNotFound:
        raise TokenInvalid() from None
    if not user.is_active:
        raise TokenInvalid()
    return user


def access_token_verify(*, token: str) -> AccessClaims:
    """The claims of a valid access token (signature, expiry, type), or
    ``TokenInvalid``. Needs only the verifying key: the controller tier runs
    this itself before it asks the service tier for the user."""
    try:
        claims = access_claims(token)
    except TokenError as exc:
        raise TokenInvalid(str(exc)) from None
    if not claims.user_id:
        raise TokenInvalid(NO_USER_ID)
    return claims


def access_user(*, user_id: str, session_id: str | None = None) -> Authenticated:
    """The caller behind verified access-token claims: the user as the
    database has it now (through the cache, which every write invalidates),
    so deactivation, deletion and role changes act at once."""
    return Authenticated(user=_active_user(user_id), session_id=session_id)


def access_token_authenticate(*, token: str) -> Authenticated:
    """Validate an access token and load its user (both steps above)."""
    claims = access_token_verify(token=token)
    return access_user(user_id=claims.user_id or "", session_id=claims.session_id)


def auth_register(*, name: str, email: str, password: str) -> TokenPair:
    """Create the user, then their first session: two commits, in this order.

    A failure between them (the token store down) leaves a user without a
    session, which is a user like any other: the client can log in with the
    password it just chose, and a retried registration is a 409 (the address
    is taken, by them). The reverse order could leave tokens of no user.

    With ``REQUIRE_EMAIL_VERIFICATION`` no session begins (empty tokens):
    logins are refused until the address is confirmed, and a registration
    must not be a way around that.
    """
    user = users.service.user_create(name=name, email=email, password=password)
    if settings.REQUIRE_EMAIL_VERIFICATION and not user.email_verified:
        return TokenPair(access="", refresh="", user=user)
    return token_pair_issue(user=user)


def credentials_verify(*, email: str, password: str, client: str) -> UserRecord:
    """The one credential check behind API login (REST and gRPC) and the
    Django admin login, so the throttle and lockout cannot be dodged by
    switching doors.

    Unknown email, wrong password and inactive account look the same to the
    caller: same error, and the same time (``users.services.user_authenticate``
    computes a password hash in every case). Failures count towards the lockout
    of (account, client address) and the account-wide ceiling
    (``arcana.core.lockout``); a lock refuses even the right password.
    """
    account = normalize_email(email)
    user = lockout.attempt(
        account=account,
        client=client,
        check=lambda: users.service.user_authenticate(email=account, password=password),
    )
    if user is None:
        metrics.login_failed()
        raise InvalidCredentials()
    return user


def auth_login(*, email: str, password: str, client: str) -> TokenPair:
    """With ``REQUIRE_EMAIL_VERIFICATION`` an unverified address is refused
    (``EmailNotVerified``) after the password was checked: only its owner
    learns why."""
    user = credentials_verify(email=email, password=password, client=client)
    if settings.REQUIRE_EMAIL_VERIFICATION and not user.email_verified:
        raise EmailNotVerified()
    users.service.user_login_record(user_id=user.id)
    return token_pair_issue(user=user)


def _reused(family: str) -> TokenInvalid:
    """A dead refresh token came back: it leaked, or its client is broken.
    Either way nothing descended from it may live on (RFC 9700 §4.14.2).
    Callers raise the answer outside any transaction, so the revocation stays."""
    authn.repo.refresh_token_family_revoke(family=family)
    return TokenInvalid("Token is blacklisted.")


def _parse_refresh(refresh: str) -> ArcanaRefreshToken:
    try:
        return ArcanaRefreshToken(refresh)  # type: ignore[arg-type]
    except RefreshTokenReused as exc:
        raise _reused(exc.family) from None
    except TokenError as exc:
        raise TokenInvalid(str(exc)) from None


def auth_refresh(*, refresh: str) -> TokenPair:
    """Rotate: the old refresh token dies, a new pair of the same family with
    current roles is issued. Of several uses of one token the unique blacklist
    insert lets exactly one rotate; the others are reuse, and end the family."""
    token = _parse_refresh(refresh)
    user = _active_user(token.get("sub"))
    new = ArcanaRefreshToken.issue(user_id=user.id, roles=user.roles, family=token.family)
    # One repository transaction revokes the old token and records the new one:
    # a failure in it leaves the old token live, so the client may retry.
    rotated = authn.repo.refresh_token_rotate(
        revoke_jti=token["jti"],
        jti=new["jti"],
        user_id=user.id,
        token=str(new),
        created_at=new.current_time,
        expires_at=datetime_from_epoch(new["exp"]),
        family=new.family,
    )
    if rotated:
        return _pair(new, user)
    # Lost the revocation: reuse. Its revocation commits on its own, so it
    # stays when the caller answers 401.
    raise _reused(token.family)


def auth_logout(*, actor: Actor, refresh: str) -> None:
    """Ends the session the token belongs to: its whole family. A dead token
    presented here is reuse as at refresh: its family ends, and the answer is 401."""
    token = _parse_refresh(refresh)
    if str(token.get("sub")) != actor.id:
        raise TokenInvalid("Token does not belong to the authenticated user.")
    authn.repo.refresh_token_family_revoke(family=token.family)


def auth_logout_all(*, actor: Actor) -> int:
    return user_sessions_end(user_id=actor.id)


def user_sessions_end(*, user_id: str, keep_session: str | None = None) -> int:
    """End every session (refresh token) of a user but the one ``keep_session``
    (a refresh-token jti) belongs to; returns how many tokens died."""
    return authn.repo.refresh_tokens_revoke_all(user_id=user_id, keep_jti=keep_session)


def sessions_list(*, actor: Actor, session_id: str | None) -> list[Session]:
    """The caller's live sessions; ``session_id`` (the access token's ``sid``)
    marks the one the call comes from."""
    return authn.repo.sessions_live(user_id=actor.id, current_jti=session_id)


def session_revoke(*, actor: Actor, session: str) -> None:
    """End one of the caller's sessions (its refresh token dies; access tokens
    already issued live out their minutes, as after logout). Another user's
    session, or an ended one, is not found."""
    if not authn.repo.session_end(user_id=actor.id, session_id=session):
        raise SessionNotFound()


def sessions_revoke(*, sessions: list[str]) -> int:
    """Operators (the admin's "revoke"): end these sessions (families) whoever
    holds them; returns how many refresh tokens died."""
    return sum(authn.repo.refresh_token_family_revoke(family=family) for family in sessions)


def tokens_flush_expired() -> int:
    """Delete expired refresh tokens' rows (they can no longer be used or
    replayed); returns how many. Run it daily: ``manage.py flushexpiredtokens``."""
    return authn.repo.refresh_tokens_flush_expired()


def password_change(
    *,
    actor: Actor,
    client: str,
    current_password: str,
    new_password: str,
    session_id: str | None = None,
) -> None:
    """Needs the current password. Every other session of the user ends; the
    caller's own, ``session_id``, survives.

    Two commits, in this order: end the other sessions, then store the new
    hash. A failure between them leaves the old password working and the
    other sessions ended, which is safe (the caller's session lives on) and
    safe to retry. The reverse order could leave a new password with the old
    sessions alive. Storing the hash also announces the change
    (users.signals.password_changed), which ends any session that a login with
    the old password opened in between.

    Limited per user and per client address (``THROTTLE_RATES["password"]``),
    and a wrong current password counts like a failed login: a stolen access
    token cannot be used to guess the password.
    """
    rate_limit(scope="password", idents=[f"user:{actor.id}", f"client:{client}"])
    user = users.service.user_record(user_id=actor.id)
    users.service.user_password_confirm(user=user, password=current_password, client=client)
    if current_password == new_password:
        raise InvalidInput({"new_password": ["The new password must differ from the current one."]})
    try:
        # Before any session ends: a password the policy refuses changes nothing.
        users.service.password_check(password=new_password, name=user.name, email=user.email)
        user_sessions_end(user_id=user.id, keep_session=session_id)
        users.service.user_set_password(
            user_id=user.id, password=new_password, keep_session=session_id
        )
    except InvalidInput as exc:
        raise InvalidInput({"new_password": exc.errors.get("password", [])}) from None
