"""Data access for users: query shape, caching and integrity errors.

Point reads are cache-aside. Every write of a user (through these functions,
the model's ``save``/``delete``, the admin, or a role change) invalidates that
user's entry, both at once and again when the transaction commits.

Invalidation writes a short-lived tombstone rather than deleting the key, and
a reader fills the cache with ``add`` (only if absent). A reader that loaded
the old row just before a writer committed therefore cannot put it back, so no
stale record outlives the write.
"""

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from users.errors import EmailTaken, UserNotFound
from users.models import Role, Roles, User, UserQuerySet, normalize_email
from users.records import UserPage, UserRecord

# v2: records carry is_superuser (a v1 record would not unpickle into them).
CACHE_KEY = "users:v2:{}"
TOMBSTONE = "__invalidated__"
TOMBSTONE_SECONDS = 5


def _key(user_id: str) -> str:
    return CACHE_KEY.format(user_id)


def _users() -> UserQuerySet:
    return User.objects.get_queryset()


def parse_user_id(user_id: str) -> uuid.UUID:
    """A malformed id names no user: it is a miss, not a validation error."""
    try:
        return uuid.UUID(str(user_id))
    except (ValueError, AttributeError, TypeError):
        raise UserNotFound() from None


# --- cache ----------------------------------------------------------------------


def invalidate(user_ids: Iterable[str]) -> None:
    keys = {_key(str(user_id)): TOMBSTONE for user_id in user_ids}
    if not keys or not settings.USER_CACHE:
        return
    cache.set_many(keys, timeout=TOMBSTONE_SECONDS)
    transaction.on_commit(lambda: cache.set_many(keys, timeout=TOMBSTONE_SECONDS))


@receiver(post_save, sender=User, dispatch_uid="users.repository.saved")
@receiver(post_delete, sender=User, dispatch_uid="users.repository.deleted")
def _user_changed(sender: type[User], instance: User, **kwargs: Any) -> None:
    invalidate([str(instance.pk)])


@receiver(m2m_changed, sender=User.roles.through, dispatch_uid="users.repository.roles")
def _roles_changed(
    sender: type, instance: User | Role, action: str, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    if not action.startswith("post_"):
        return
    if isinstance(instance, User):
        invalidate([str(instance.pk)])
    elif pk_set:  # changed from the role's side: every user named
        invalidate(str(pk) for pk in pk_set)


# --- reads ----------------------------------------------------------------------


def user_get(*, user_id: str) -> UserRecord:
    """One user by id, from the cache when possible."""
    pk = parse_user_id(user_id)
    if not settings.USER_CACHE:
        return user_reload(user_id=str(pk))
    key = _key(str(pk))
    cached = cache.get(key)
    if isinstance(cached, UserRecord):
        return cached
    try:
        record = UserRecord.from_model(_users().with_roles().get(pk=pk))
    except User.DoesNotExist:
        raise UserNotFound() from None
    if cached is None:  # a tombstone means a write is in flight: do not refill
        cache.add(key, record, timeout=settings.USER_CACHE_TIMEOUT)
    return record


def user_get_model(*, user_id: str, for_update: bool = False) -> User:
    """The model itself, for a service about to change it (never cached)."""
    pk = parse_user_id(user_id)
    queryset = _users().select_for_update() if for_update else _users()
    try:
        return queryset.get(pk=pk)
    except User.DoesNotExist:
        raise UserNotFound() from None


def user_find_by_email(*, email: str) -> User | None:
    """The model with its password hash, for authentication."""
    return _users().by_email(email).first()


def admins_active_other_than(*, user_id: str) -> int:
    """How many other active users hold the admin role. Their rows are locked
    (in the caller's transaction), so two admins demoting themselves at once
    cannot both see the other one and leave nobody."""
    others = (
        _users()
        .active()
        .filter(roles__name=Roles.ADMIN)
        .exclude(pk=parse_user_id(user_id))
        .select_for_update()
    )
    return len(others.values_list("pk", flat=True))


def user_list(*, page: int, size: int, sync_status: str | None, search: str | None) -> UserPage:
    queryset = _users().with_sync_status(sync_status).search(search)
    # One snapshot for the count and the page: as two autocommit statements (or
    # in Django's READ COMMITTED transactions on MySQL) a user created between
    # them gave a page holding more users than ``total``. SQLite's transactions
    # are snapshots; MySQL's must be REPEATABLE READ. (A window count in the page
    # query would need no transaction, but it makes the database read every
    # matching row for every page: measured 3x the database CPU at 700 users.)
    with transaction.atomic():
        if connection.vendor == "mysql" and len(connection.atomic_blocks) == 1:
            # Only the outermost block can still choose its isolation level.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        total = queryset.count()
        rows = queryset.with_roles().order_by("created_at", "id")[page * size : (page + 1) * size]
        users = [UserRecord.from_model(user) for user in rows]
    return UserPage(users=users, page=page, size=size, total=total)


# --- writes -----------------------------------------------------------------------


def _is_email_conflict(exc: IntegrityError) -> bool:
    # SQLite: "UNIQUE constraint failed: users_user.email";
    # MySQL/MariaDB: "Duplicate entry '...' for key 'email'".
    return "email" in str(exc).lower()


def user_insert(
    *, name: str, email: str, password: str, roles: Iterable[str], sync_status: str | None = None
) -> UserRecord:
    user = User(name=name, email=normalize_email(email))
    if sync_status:
        user.sync_status = sync_status
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError as exc:
        if _is_email_conflict(exc):
            raise EmailTaken() from None
        raise
    user.roles.set(Role.objects.filter(name__in=set(roles)))
    return user_reload(user_id=str(user.pk))


def user_save(*, user: User, fields: list[str], roles: Iterable[str] | None = None) -> UserRecord:
    """Persist the named fields (and roles, when given) of a loaded user."""
    if fields:
        try:
            with transaction.atomic():
                user.save(update_fields=[*fields, "updated_at"])
        except IntegrityError as exc:
            if _is_email_conflict(exc):
                raise EmailTaken() from None
            raise
    if roles is not None:
        user.roles.set(Role.objects.filter(name__in=set(roles)))
        if not fields:
            user.save(update_fields=["updated_at"])
    return user_reload(user_id=str(user.pk))


def user_password_save(*, user: User, keep_session: str | None = None) -> None:
    """Store the password ``user.set_password`` has just set. Once it commits
    the model sends ``users.signals.password_changed``, which ends the user's
    sessions but ``keep_session`` (a refresh-token jti): the caller's own."""
    user.keep_session = keep_session
    user.save(update_fields=["password", "updated_at"])


def user_reload(*, user_id: str) -> UserRecord:
    """Fresh from the database, bypassing the cache (used right after writes)."""
    try:
        return UserRecord.from_model(_users().with_roles().get(pk=parse_user_id(user_id)))
    except User.DoesNotExist:
        raise UserNotFound() from None


def user_login_record(*, user_id: str) -> None:
    """Stamp ``last_login`` (as Django's admin login does). One UPDATE, no
    signal: the cached record holds no ``last_login``, so nothing to invalidate."""
    _users().filter(pk=parse_user_id(user_id)).update(last_login=timezone.now())


def user_delete(*, user_id: str) -> None:
    deleted, _ = _users().filter(pk=parse_user_id(user_id)).delete()
    if not deleted:
        raise UserNotFound()
    invalidate([user_id])


def users_update_many(*, user_ids: Iterable[str], **values: Any) -> int:
    """Bulk update (admin actions); ``QuerySet.update`` sends no signals, so
    invalidate here."""
    ids = [str(parse_user_id(user_id)) for user_id in user_ids]
    count = _users().filter(pk__in=ids).update(**values, updated_at=timezone.now())
    invalidate(ids)
    return count
