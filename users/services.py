"""Business rules for users: who may see and change whom, and how.

Every function is keyword-only, takes primitives (plus the ``Actor`` asking),
and returns frozen records or primitives, so REST, gRPC, the admin and authn
share one set of rules. None opens a transaction or holds a lock: each
repository call owns its own, and a rule that needs a lock to be decided (the
last active admin) is decided by the repository inside it. Passwords are
hashed and checked here; the hash goes to and comes from the repository and
no further.
"""

import dataclasses
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMessage

import users
from arcana.core import lockout
from arcana.core.exceptions import Forbidden, InvalidInput
from arcana.core.ratelimit import rate_limit
from users import mail, tokens
from users.cursors import ListFilters, make_cursor, read_cursor
from users.errors import (
    CursorWithPage,
    LastAdmin,
    PageTooDeep,
    PasswordResetLinkInvalid,
    UserNotFound,
    VerificationLinkInvalid,
)
from users.models import Roles, SyncStatus, User
from users.normal import normalize_email, parse_user_id
from users.records import (
    MAIL_EMAIL_VERIFICATION,
    MAIL_PASSWORD_RESET,
    Actor,
    UserChanges,
    UserCredentials,
    UserPage,
    UserRecord,
)

MAX_PAGE_SIZE = 100


def password_check(*, password: str, name: str = "", email: str = "") -> None:
    """Django's validators (length, common, numeric, similarity) as a domain error."""
    # An unsaved model, never stored nor passed on: the similarity validator
    # reads the attributes and their verbose names off a user model instance.
    candidate = User(name=name, email=email)
    try:
        password_validation.validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise InvalidInput({"password": list(exc.messages)}) from None


def _check_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    unknown = [role for role in roles if role not in Roles.values]
    if unknown:
        raise InvalidInput({"roles": [f"Unknown role: {role}." for role in unknown]})
    return roles


def _check_sync_status(sync_status: str) -> str:
    if sync_status not in SyncStatus.values:
        raise InvalidInput({"sync_status": [f"Unknown sync status: {sync_status}."]})
    return sync_status


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden()


def _require_access(actor: Actor, user_id: str) -> str:
    """Admins reach everyone; others only themselves. A stranger's id is a 404,
    so ids cannot be probed."""
    normalised = str(parse_user_id(user_id))
    if not actor.may_access(normalised):
        raise UserNotFound()
    return normalised


def user_create(
    *,
    name: str,
    email: str,
    password: str,
    roles: Sequence[str] | None = None,
    sync_status: str | None = None,
    by: str | None = None,
) -> UserRecord:
    """Create a user; the email must be free and the password strong. ``by``:
    the admin creating it, whose act the admin's History records."""
    email = normalize_email(email)
    password_check(password=password, name=name, email=email)
    user = users.repo.user_insert(
        name=name,
        email=email,
        password_hash=make_password(password),
        roles=_check_roles(roles if roles is not None else [Roles.USER]),
        sync_status=_check_sync_status(sync_status) if sync_status else None,
        by=by,
    )
    # After the insert committed: a failure here leaves an unverified user,
    # who can ask for the link again (email_verification_resend).
    users.repo.mail_enqueue(kind=MAIL_EMAIL_VERIFICATION, user_id=user.id)
    return user


def user_create_by(
    *,
    actor: Actor,
    name: str,
    email: str,
    password: str,
    roles: Sequence[str] | None = None,
) -> UserRecord:
    """``POST /users``: an admin creating someone (recorded in its History)."""
    _require_admin(actor)
    return user_create(name=name, email=email, password=password, roles=roles, by=actor.id)


def user_get(*, actor: Actor, user_id: str) -> UserRecord:
    return users.repo.user_get(user_id=_require_access(actor, user_id))


# --- for authn: the only way it reaches users -----------------------------------------


def user_record(*, user_id: str) -> UserRecord:
    """A user by id, with no access rule: for authn, which checks tokens
    (through the cache, which every write invalidates)."""
    return users.repo.user_get(user_id=user_id)


def user_authenticate(*, email: str, password: str) -> UserRecord | None:
    """The user these credentials belong to, or None: unknown email, wrong
    password and inactive account alike, in the same time (a password hash is
    computed in every case, so the timing does not tell them apart either).

    A correct password stored with an outdated hasher or work factor gets
    Django's upgrade: the new hash is stored, and no session ends (the
    password is the same).
    """
    credentials = users.repo.user_credentials(email=email)
    if credentials is None:
        make_password(password)
        return None
    outdated: list[bool] = []
    matches = check_password(
        password, credentials.password_hash, setter=lambda _raw: outdated.append(True)
    )
    if not matches or not credentials.user.is_active:
        return None
    if outdated:
        users.repo.user_password_hash_upgrade(
            user_id=credentials.user.id,
            old_hash=credentials.password_hash,
            new_hash=make_password(password),
        )
    return credentials.user


def user_password_matches(*, user_id: str, password: str) -> bool:
    """Whether ``password`` is the user's current one (before a sensitive change)."""
    return check_password(password, users.repo.user_password_hash(user_id=user_id))


def user_password_confirm(*, user: UserRecord, password: str, client: str) -> None:
    """The caller proves it is ``user`` before a sensitive change (password,
    own email): ``InvalidInput`` on ``current_password`` when wrong, and the
    failure counts like a failed login (``arcana.core.lockout``)."""
    confirmed = lockout.attempt(
        account=user.email,
        client=client,
        check=lambda: user_password_matches(user_id=user.id, password=password),
    )
    if not confirmed:
        raise InvalidInput({"current_password": ["Current password is incorrect."]})


def user_login_record(*, user_id: str) -> None:
    """Stamp ``last_login`` after a successful login."""
    users.repo.user_login_record(user_id=user_id)


def user_list(
    *,
    actor: Actor,
    page: int | None = None,
    size: int = 10,
    sync_status: str | None = None,
    search: str | None = None,
    is_active: bool | None = None,
    cursor: str | None = None,
) -> UserPage:
    """A page of users, by offset (``page``, default 0) or by keyset
    (``cursor``: a ``next_cursor`` of an earlier page with the same filters).
    Every page but the last carries a ``next_cursor``; offsets beyond
    ``USER_LIST_MAX_OFFSET`` are refused (``PageTooDeep``)."""
    _require_admin(actor)
    errors: dict[str, list[str]] = {}
    if page is not None and page < 0:
        errors["page"] = ["Ensure this value is greater than or equal to 0."]
    if not 1 <= size <= MAX_PAGE_SIZE:
        errors["size"] = [f"Ensure this value is between 1 and {MAX_PAGE_SIZE}."]
    if errors:
        raise InvalidInput(errors)
    filters = ListFilters(
        search=search or None,
        sync_status=_check_sync_status(sync_status) if sync_status else None,
        is_active=is_active,
    )
    if cursor:
        if page is not None:
            raise CursorWithPage()
        after = read_cursor(cursor, filters)
        found = users.repo.user_list_after(
            size=size,
            after_created_at=after.created_at,
            after_id=after.id,
            sync_status=filters.sync_status,
            search=filters.search,
            is_active=filters.is_active,
        )
    else:
        page = page or 0
        if page * size > settings.USER_LIST_MAX_OFFSET:
            raise PageTooDeep(
                f"Offset page * size = {page * size} is beyond {settings.USER_LIST_MAX_OFFSET}:"
                " follow next_cursor from an earlier page instead."
            )
        found = users.repo.user_list(
            page=page,
            size=size,
            sync_status=filters.sync_status,
            search=filters.search,
            is_active=filters.is_active,
        )
    if not (found.has_more and found.users):
        return found
    return dataclasses.replace(found, next_cursor=make_cursor(found.users[-1], filters))


def _require_superuser_to_touch(actor: Actor, target: UserRecord, action: str) -> None:
    """A superuser is changed (demoted, deactivated, re-emailed) or deleted
    only by another superuser: an API admin cannot take over or lock out the
    operators above them."""
    if target.is_superuser and not actor.is_superuser and actor.id != target.id:
        raise Forbidden(f"Only a superuser may {action} a superuser.")


def _last_admin(actor: Actor, target_id: str, action: str) -> LastAdmin:
    """The repository's refusal, worded for the caller: the last active admin
    cannot demote, deactivate or delete themself."""
    if actor.id != target_id:
        return LastAdmin()
    return LastAdmin(
        f"You are the last active admin and cannot {action} yourself; "
        "make another user an admin first."
    )


def _verify_own_password(*, user: UserRecord, current_password: str | None, client: str) -> None:
    """Changing one's own email needs the current password: a stolen access
    token alone cannot take the account over (or probe which emails exist).
    Limited per user and per client; wrong passwords count like failed logins."""
    rate_limit(scope="email_change", idents=[f"user:{user.id}", f"client:{client}"])
    if not current_password:
        raise InvalidInput(
            {"current_password": ["Your current password is required to change your email."]}
        )
    user_password_confirm(user=user, password=current_password, client=client)


def user_update(
    *,
    actor: Actor,
    user_id: str,
    client: str,
    name: str | None = None,
    email: str | None = None,
    current_password: str | None = None,
    roles: Sequence[str] | None = None,
    is_active: bool | None = None,
    sync_status: str | None = None,
) -> UserRecord:
    """Change a user. ``None`` means "leave as is". Only admins may change
    roles, activation and sync status; changing one's own email needs
    ``current_password``; ``client`` is the caller's address (for limits)."""
    user_id = _require_access(actor, user_id)
    admin_fields = {"roles": roles, "is_active": is_active, "sync_status": sync_status}
    if not actor.is_admin and any(value is not None for value in admin_fields.values()):
        raise Forbidden("Only admins may change roles, is_active or sync_status.")

    user = users.repo.user_get(user_id=user_id)
    checked_roles = _check_roles(roles) if roles is not None else None
    new_email = normalize_email(email) if email is not None else None
    demoted = checked_roles is not None and Roles.ADMIN not in checked_roles and user.is_admin
    deactivated = is_active is False and user.is_active
    if demoted:
        _require_superuser_to_touch(actor, user, "demote")
    if deactivated:
        _require_superuser_to_touch(actor, user, "deactivate")
    changes: UserChanges = {}
    if new_email is not None and new_email != user.email:
        _require_superuser_to_touch(actor, user, "change the email of")
        if actor.id == user_id:
            _verify_own_password(user=user, current_password=current_password, client=client)
        if settings.REQUIRE_EMAIL_VERIFICATION and actor.id == user_id:
            # The address changes once its owner follows the link mailed to it.
            changes["pending_email"] = new_email
        else:
            changes["email"], changes["email_verified"] = new_email, False
    elif new_email is not None and user.pending_email:
        changes["pending_email"] = ""  # back to the current address: nothing to confirm
    if name is not None:
        changes["name"] = name
    if is_active is not None:
        changes["is_active"] = is_active
    if sync_status is not None:
        changes["sync_status"] = _check_sync_status(sync_status)
    # An admin's change to someone else goes in that user's History.
    by = actor.id if actor.is_admin and actor.id != user_id else None
    try:
        updated = users.repo.user_update_fields(
            user_id=user_id, changes=changes, roles=checked_roles, by=by
        )
    except LastAdmin:
        raise _last_admin(actor, user_id, "demote" if demoted else "deactivate") from None
    if changes.get("pending_email") or "email" in changes:
        users.repo.mail_enqueue(kind=MAIL_EMAIL_VERIFICATION, user_id=user_id)
    return updated


def user_delete(*, actor: Actor, user_id: str) -> None:
    _require_admin(actor)
    target = users.repo.user_get(user_id=user_id)
    _require_superuser_to_touch(actor, target, "delete")
    try:
        users.repo.user_delete(user_id=target.id, by=actor.id)
    except LastAdmin:
        raise _last_admin(actor, target.id, "delete") from None


def user_set_password(*, user_id: str, password: str, keep_session: str | None = None) -> None:
    """Set a new password after checking it against the policy. Every session
    of the user ends once it commits, but ``keep_session`` (users.signals)."""
    user = users.repo.user_get(user_id=user_id)
    password_check(password=password, name=user.name, email=user.email)
    users.repo.user_set_password_hash(
        user_id=user.id, password_hash=make_password(password), keep_session=keep_session
    )


def users_mark_pending_sync(*, user_ids: Iterable[str]) -> list[str]:
    """Admin action: queue users for the next sync; the ids of those it changed."""
    return users.repo.users_update_many(user_ids=user_ids, sync_status=SyncStatus.PENDING)


def users_deactivate(*, user_ids: Iterable[str]) -> list[str]:
    """Admin action: deactivated users' tokens stop working at once; the ids
    of those it changed (the active ones)."""
    return users.repo.users_update_many(user_ids=user_ids, is_active=False)


# --- account mails: password reset, email verification ---------------------------------


def _mail_limit(email: str) -> None:
    """Per target address, whoever asks: nobody floods one mailbox."""
    rate_limit(scope="account_mail", idents=[f"email:{email}"])


def password_reset_request(*, email: str) -> None:
    """Queue a reset link for ``email``. The same for an address nobody has:
    the queue takes the address, and the worker finds out (so the answer, and
    its time, tell nothing)."""
    email = normalize_email(email)
    _mail_limit(email)
    users.repo.mail_enqueue(kind=MAIL_PASSWORD_RESET, email=email)


def email_verification_resend(*, email: str) -> None:
    """Queue a new verification link for the account of ``email``, if it has
    an address waiting for confirmation; the same answer otherwise."""
    email = normalize_email(email)
    _mail_limit(email)
    users.repo.mail_enqueue(kind=MAIL_EMAIL_VERIFICATION, email=email)


def _linked_user_id(uid: str) -> str | None:
    user_id = tokens.user_id_of(uid)
    if user_id is None:
        return None
    try:
        return str(parse_user_id(user_id))
    except UserNotFound:
        return None


def password_reset_confirm(*, uid: str, token: str, new_password: str) -> None:
    """Set a new password with a reset link. The link works once, until it
    expires (``PASSWORD_RESET_TIMEOUT``); every session of the user ends."""
    user_id = _linked_user_id(uid)
    if user_id is None:
        raise PasswordResetLinkInvalid()
    try:
        credentials = users.repo.user_credentials_of(user_id=user_id)
    except UserNotFound:
        raise PasswordResetLinkInvalid() from None
    user = credentials.user
    if not user.is_active or not tokens.password_reset_tokens.matches(credentials, token):
        raise PasswordResetLinkInvalid()
    try:
        password_check(password=new_password, name=user.name, email=user.email)
    except InvalidInput as exc:
        raise InvalidInput({"new_password": exc.errors.get("password", [])}) from None
    replaced = users.repo.user_password_hash_replace(
        user_id=user.id, old_hash=credentials.password_hash, new_hash=make_password(new_password)
    )
    if not replaced:  # the link was used (or the password changed) meanwhile
        raise PasswordResetLinkInvalid()


def email_verify(*, uid: str, token: str) -> UserRecord:
    """Confirm an address with a verification link: the user's address is
    verified, or the address they changed to becomes theirs."""
    user_id = _linked_user_id(uid)
    if user_id is None:
        raise VerificationLinkInvalid()
    try:
        user = users.repo.user_get(user_id=user_id)
    except UserNotFound:
        raise VerificationLinkInvalid() from None
    if not tokens.email_verification_tokens.matches(user, token):
        raise VerificationLinkInvalid()
    return users.repo.user_email_confirm(user_id=user.id, email=user.pending_email or user.email)


def _reset_mail(email: str) -> EmailMessage | None:
    credentials: UserCredentials | None = users.repo.user_credentials(email=email)
    if credentials is None or not credentials.user.is_active:
        return None
    user = credentials.user
    return mail.password_reset_message(
        to=user.email,
        name=user.name,
        uid=tokens.uid_of(user.id),
        token=tokens.password_reset_tokens.token_for(credentials),
    )


def _verification_mail(email: str, user_id: str) -> EmailMessage | None:
    if user_id:
        try:
            user: UserRecord | None = users.repo.user_get(user_id=user_id)
        except UserNotFound:
            user = None
    else:
        found = users.repo.user_credentials(email=email)
        user = found.user if found is not None else None
    if user is None or not user.is_active:
        return None
    to = user.pending_email or ("" if user.email_verified else user.email)
    if not to:
        return None
    return mail.email_verification_message(
        to=to,
        name=user.name,
        uid=tokens.uid_of(user.id),
        token=tokens.email_verification_tokens.token_for(user),
    )


def account_mail_send(*, kind: str, email: str = "", user_id: str = "") -> bool:
    """For the worker (``users.tasks``): build the mail from the user as they
    are now and send it; False when there is nobody to mail (an unknown or
    inactive address, an address already verified). SMTP errors propagate,
    for the worker to try again."""
    if kind == MAIL_PASSWORD_RESET:
        message = _reset_mail(email)
    elif kind == MAIL_EMAIL_VERIFICATION:
        message = _verification_mail(email, user_id)
    else:
        raise ValueError(f"Not an account mail: {kind}")
    if message is None:
        return False
    return bool(message.send())
