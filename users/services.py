"""Business rules for users: who may see and change whom, and how.

Every function is keyword-only, takes primitives (plus the ``Actor`` asking),
and returns frozen records, so REST, gRPC and the admin share one set of rules.
"""

from collections.abc import Iterable, Sequence

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from arcana.exceptions import Forbidden, InvalidInput
from users import repository
from users.errors import UserNotFound
from users.models import Roles, SyncStatus, User, normalize_email
from users.records import Actor, UserPage, UserRecord

ADMIN_ONLY_FIELDS = ("roles", "is_active", "sync_status")
MAX_PAGE_SIZE = 100


def password_check(*, password: str, name: str = "", email: str = "") -> None:
    """Django's validators (length, common, numeric, similarity) as a domain error."""
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
    normalised = str(repository.parse_user_id(user_id))
    if not actor.may_access(normalised):
        raise UserNotFound()
    return normalised


@transaction.atomic
def user_create(
    *,
    name: str,
    email: str,
    password: str,
    roles: Sequence[str] | None = None,
    sync_status: str | None = None,
) -> UserRecord:
    """Create a user; the email must be free and the password strong."""
    email = normalize_email(email)
    password_check(password=password, name=name, email=email)
    return repository.user_insert(
        name=name,
        email=email,
        password=password,
        roles=_check_roles(roles if roles is not None else [Roles.USER]),
        sync_status=_check_sync_status(sync_status) if sync_status else None,
    )


def user_create_by(
    *,
    actor: Actor,
    name: str,
    email: str,
    password: str,
    roles: Sequence[str] | None = None,
) -> UserRecord:
    """``POST /users``: an admin creating someone."""
    _require_admin(actor)
    return user_create(name=name, email=email, password=password, roles=roles)


def user_get(*, actor: Actor, user_id: str) -> UserRecord:
    return repository.user_get(user_id=_require_access(actor, user_id))


def user_list(
    *,
    actor: Actor,
    page: int = 0,
    size: int = 10,
    sync_status: str | None = None,
    search: str | None = None,
) -> UserPage:
    _require_admin(actor)
    errors: dict[str, list[str]] = {}
    if page < 0:
        errors["page"] = ["Ensure this value is greater than or equal to 0."]
    if not 1 <= size <= MAX_PAGE_SIZE:
        errors["size"] = [f"Ensure this value is between 1 and {MAX_PAGE_SIZE}."]
    if errors:
        raise InvalidInput(errors)
    return repository.user_list(
        page=page,
        size=size,
        sync_status=_check_sync_status(sync_status) if sync_status else None,
        search=search or None,
    )


@transaction.atomic
def user_update(
    *,
    actor: Actor,
    user_id: str,
    name: str | None = None,
    email: str | None = None,
    roles: Sequence[str] | None = None,
    is_active: bool | None = None,
    sync_status: str | None = None,
) -> UserRecord:
    """Change a user. ``None`` means "leave as is". Only admins may change
    roles, activation and sync status."""
    user_id = _require_access(actor, user_id)
    admin_fields = {"roles": roles, "is_active": is_active, "sync_status": sync_status}
    if not actor.is_admin and any(value is not None for value in admin_fields.values()):
        raise Forbidden("Only admins may change roles, is_active or sync_status.")

    user = repository.user_get_model(user_id=user_id, for_update=True)
    fields: list[str] = []
    if name is not None and name != user.name:
        user.name = name
        fields.append("name")
    if email is not None and normalize_email(email) != user.email:
        user.email = normalize_email(email)
        fields.append("email")
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        fields.append("is_active")
    if sync_status is not None and sync_status != user.sync_status:
        user.sync_status = _check_sync_status(sync_status)
        fields.append("sync_status")
    checked_roles = _check_roles(roles) if roles is not None else None
    return repository.user_save(user=user, fields=fields, roles=checked_roles)


@transaction.atomic
def user_delete(*, actor: Actor, user_id: str) -> None:
    _require_admin(actor)
    repository.user_delete(user_id=user_id)


@transaction.atomic
def user_set_password(*, user_id: str, password: str, keep_session: str | None = None) -> None:
    """Set a new password after checking it against the policy. Every session
    of the user ends once it commits, but ``keep_session`` (users.signals)."""
    user = repository.user_get_model(user_id=user_id, for_update=True)
    password_check(password=password, name=user.name, email=user.email)
    user.set_password(password)
    repository.user_password_save(user=user, keep_session=keep_session)


def users_mark_pending_sync(*, user_ids: Iterable[str]) -> int:
    """Admin action: queue users for the next sync."""
    return repository.users_update_many(user_ids=user_ids, sync_status=SyncStatus.PENDING)


def users_deactivate(*, user_ids: Iterable[str]) -> int:
    """Admin action: deactivated users' tokens stop working at once."""
    return repository.users_update_many(user_ids=user_ids, is_active=False)
