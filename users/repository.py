"""Data access for users: query shape, caching, transactions and integrity errors.

Every function states an intent (``user_update_fields``, ``user_credentials``)
and takes and returns plain values and frozen records: no model, queryset,
lock or open transaction leaves this module, so a service never holds a lock
across a call and the layered deployment can put a gRPC hop in front of it.
Each write owns its transaction and its row locks, and the rules that need a
lock to be decided (the last active admin) are decided here, inside them.

Point reads are cache-aside. Every write of a user (through these functions,
the model's ``save``/``delete``, the admin, or a role change: the receivers in
``users.signals``) invalidates that user's entry, both at once and again when
the transaction commits.

Invalidation writes a short-lived tombstone rather than deleting the key, and
a reader fills the cache with ``add`` (only if absent). A reader that loaded
the old row just before a writer committed therefore cannot put it back, so no
stale record outlives the write.

With read replicas (``arcana.db.routers``) a tombstone also means "written
moments ago": a reader that finds one reads the primary. It lives at least
``DATABASE_REPLICA_PIN_SECONDS``, longer than a usable replica can be behind,
so a reader that finds none may read a replica and cache what it gets.
Without the cache, and for credentials and password hashes, reads go to the
primary: they decide who gets in.
"""

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from arcana.core import metrics
from arcana.core.context import NOT_FETCHED, ReadAhead, read_ahead
from arcana.core.reads import primary
from users.errors import EmailTaken, LastAdmin, UserNotFound, VerificationLinkInvalid
from users.models import Role, Roles, User, UserQuerySet
from users.normal import normalize_email, parse_user_id
from users.records import (
    MAIL_KINDS,
    READ_AHEAD_USER,
    UserChanges,
    UserCredentials,
    UserPage,
    UserRecord,
)
from users.signals import password_changed
from users.tasks import account_mail

# v3: records carry email_verified and pending_email (an older record would
# not unpickle into them).
CACHE_KEY = "users:v3:{}"
TOMBSTONE = "__invalidated__"
TOMBSTONE_SECONDS = 5

CHANGEABLE_FIELDS = frozenset(UserChanges.__annotations__)
# The lists' one order; every list index ends with it (migration 0005).
LIST_ORDER = ("created_at", "id")
LIST_COUNT_KEY = "users:list-count:v1:{}"


def _key(user_id: str) -> str:
    return CACHE_KEY.format(user_id)


def _users() -> UserQuerySet:
    return User.objects.get_queryset()


def _record(user: User) -> UserRecord:
    """The one model -> record converter (expects roles prefetched)."""
    return UserRecord(
        id=str(user.id),
        name=user.name,
        email=user.email,
        roles=tuple(user.role_names),
        sync_status=user.sync_status,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
        is_superuser=user.is_superuser,
        email_verified=user.email_verified,
        pending_email=user.pending_email,
    )


# --- cache ----------------------------------------------------------------------


def _tombstone_seconds() -> float:
    pin: float = settings.DATABASE_REPLICA_PIN_SECONDS
    return max(TOMBSTONE_SECONDS, pin)


def invalidate(user_ids: Iterable[str]) -> None:
    keys = {_key(str(user_id)): TOMBSTONE for user_id in user_ids}
    if not keys:
        return
    ahead = read_ahead()
    if ahead is not None:  # what this call read ahead of the write is stale now
        ahead.forget(keys)
    if not settings.USER_CACHE:
        return
    seconds = _tombstone_seconds()
    cache.set_many(keys, timeout=seconds)
    transaction.on_commit(lambda: cache.set_many(keys, timeout=seconds))


def _announced_keys(ahead: ReadAhead) -> set[str]:
    keys = set()
    for user_id in ahead.pop_announced(READ_AHEAD_USER):
        try:
            keys.add(_key(str(parse_user_id(user_id))))
        except UserNotFound:
            continue  # a malformed id: its read will be a miss without the cache
    return keys


def _cache_read(key: str, ahead: ReadAhead | None) -> tuple[object, bool]:
    """``(the cache's value for key, whether this call announced key itself)``.

    The value is what this call read ahead for ``key`` if it did, else one
    round trip: a GET, or, when the call announced other users it is about to
    read (``arcana.core.context.read_ahead_announce``), one MGET of ``key``
    and theirs, whose values are kept for those reads. A value read ahead is
    used once, and is exactly what a GET would have answered at that moment:
    a record, a tombstone (the reader then goes to the primary and refills
    nothing) or nothing; a write of the user in this call forgets it
    (:func:`invalidate`)."""
    if ahead is None:
        return cache.get(key), False
    found = ahead.take(key)
    if found is not NOT_FETCHED:
        return found, False
    announced = _announced_keys(ahead)
    others = [other for other in announced if other != key]
    if not others:
        return cache.get(key), key in announced
    values = cache.get_many([key, *others])
    for other in others:
        ahead.keep(other, values.get(other))
    return values.get(key), key in announced


# --- reads ----------------------------------------------------------------------


def user_get(*, user_id: str) -> UserRecord:
    """One user by id, from the cache when possible (in the round trip that
    read the caller, when the call announced it: ``_cache_read``)."""
    pk = parse_user_id(user_id)
    if not settings.USER_CACHE:
        with primary():  # nothing tells a recent write apart: the primary has it
            return _fresh(pk)
    key = _key(str(pk))
    ahead = read_ahead()
    cached, again = _cache_read(key, ahead)
    record = _from_cache(pk, key, cached)
    if again and ahead is not None:  # the caller reads themself: their record, once more
        ahead.keep(key, record)
    return record


def _from_cache(pk: uuid.UUID, key: str, cached: object) -> UserRecord:
    if isinstance(cached, UserRecord):
        metrics.cache_read(cache="user", hit=True)
        return cached
    metrics.cache_read(cache="user", hit=False)
    if cached is not None:  # a tombstone: written moments ago, do not refill
        with primary():
            return _fresh(pk)
    record = _fresh(pk)
    cache.add(key, record, timeout=settings.USER_CACHE_TIMEOUT)
    return record


def user_cached(*, user_id: str) -> UserRecord | None:
    """The user's record if the cache holds one, else None (not cached,
    invalidated moments ago, no cache, a malformed id): the shared cache
    alone, never the database. Layered mode's tiers above the repository read
    it before they call ``user_get`` / ``user_record`` across a hop
    (``arcana.core.delegation.front``); a None sends them on to this module."""
    if not settings.USER_CACHE:
        return None
    try:
        pk = parse_user_id(user_id)
    except UserNotFound:
        return None
    cached = cache.get(_key(str(pk)))
    hit = isinstance(cached, UserRecord)
    metrics.cache_read(cache="user", hit=hit)
    return cached if hit else None


def _fresh(pk: uuid.UUID) -> UserRecord:
    """From the database, bypassing the cache (also used right after writes)."""
    try:
        return _record(_users().with_roles().get(pk=pk))
    except User.DoesNotExist:
        raise UserNotFound() from None


def user_credentials(*, email: str) -> UserCredentials | None:
    """The user with this address and their password hash, for the service
    that checks a password at login (never cached: the hash stays in the
    database and in the one call that needs it)."""
    with primary():  # a password set a moment ago works at once, for everyone
        user = _users().by_email(email).with_roles().first()
    if user is None:
        return None
    return UserCredentials(user=_record(user), password_hash=user.password)


def user_credentials_of(*, user_id: str) -> UserCredentials:
    """A user by id with their password hash, for the service that checks a
    password reset link (which hashes the hash)."""
    with primary():
        user = _users().with_roles().filter(pk=parse_user_id(user_id)).first()
    if user is None:
        raise UserNotFound()
    return UserCredentials(user=_record(user), password_hash=user.password)


def user_password_hash(*, user_id: str) -> str:
    """The stored password hash of a user, for the service that checks a
    current password before a sensitive change."""
    hashes = _users().filter(pk=parse_user_id(user_id)).values_list("password", flat=True)
    with primary():
        found = hashes.first()
    if found is None:
        raise UserNotFound()
    return found


def _listed(
    alias: str, sync_status: str | None, search: str | None, is_active: bool | None
) -> UserQuerySet:
    queryset = _users().using(alias).with_sync_status(sync_status).search(search)
    return queryset if is_active is None else queryset.filter(is_active=is_active)


def _total(
    queryset: UserQuerySet, sync_status: str | None, search: str | None, is_active: bool | None
) -> tuple[int, bool]:
    """``(total, is_estimate)``: exact when at most USER_LIST_EXACT_TOTAL_UP_TO
    users match (a count that stops there: bounded work), otherwise the count
    cached for this filter set, made at most once per USER_LIST_COUNT_SECONDS
    (a full count at a million rows costs a scan of an index: seconds with a
    search, hundreds of milliseconds without)."""
    limit: int = settings.USER_LIST_EXACT_TOTAL_UP_TO
    bounded = queryset.order_by()[: limit + 1].count()
    if bounded <= limit:
        return bounded, False
    filters = json.dumps([sync_status, search, is_active])
    key = LIST_COUNT_KEY.format(hashlib.sha256(filters.encode()).hexdigest())
    cached = cache.get(key)
    if isinstance(cached, int) and cached > limit:
        return cached, True
    total = queryset.order_by().count()
    cache.set(key, total, timeout=settings.USER_LIST_COUNT_SECONDS)
    return total, True


def user_list(
    *,
    page: int,
    size: int,
    sync_status: str | None,
    search: str | None,
    is_active: bool | None = None,
) -> UserPage:
    """A page by offset: the database reads and discards ``page * size`` rows
    first (the service caps that at USER_LIST_MAX_OFFSET; this does not)."""
    # Where the router sends this read (a replica, unless the caller wrote
    # moments ago), in one transaction there: on the primary it would be a
    # transaction on the primary, which reads the primary.
    alias = router.db_for_read(User)
    queryset = _listed(alias, sync_status, search, is_active)
    # One snapshot for the count and the page: as two autocommit statements (or
    # in Django's READ COMMITTED transactions on MySQL) a user created between
    # them gave a page holding more users than ``total``. SQLite's transactions
    # are snapshots; MySQL's must be REPEATABLE READ. (A window count in the page
    # query would need no transaction, but it makes the database read every
    # matching row for every page: measured 3x the database CPU at 700 users.)
    connection = connections[alias]
    start = page * size
    with transaction.atomic(using=alias):
        if connection.vendor == "mysql" and len(connection.atomic_blocks) == 1:
            # Only the outermost block can still choose its isolation level.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        total, estimate = _total(queryset, sync_status, search, is_active)
        rows = queryset.with_roles().order_by(*LIST_ORDER)[start : start + size + 1]
        users = [_record(user) for user in rows]
    return UserPage(
        users=users[:size],
        page=page,
        size=size,
        total=total,
        has_more=len(users) > size,
        total_is_estimate=estimate,
    )


def user_list_after(
    *,
    size: int,
    after_created_at: datetime | None,
    after_id: str | None,
    sync_status: str | None,
    search: str | None,
    is_active: bool | None,
) -> UserPage:
    """A page by keyset: the ``size`` users just after ``(after_created_at,
    after_id)`` in ``created_at, id`` order (from the start when None). One
    range read of a ``(..., created_at, id)`` index (migration 0005), as cheap
    at the millionth row as at the first; no count."""
    alias = router.db_for_read(User)
    queryset = _listed(alias, sync_status, search, is_active)
    if after_created_at is not None:
        pk = parse_user_id(after_id or "")
        # The ``>=`` alone bounds the index range; the OR orders the ties by id.
        after = Q(created_at__gt=after_created_at) | Q(created_at=after_created_at, id__gt=pk)
        queryset = queryset.filter(after, created_at__gte=after_created_at)
    users = [_record(user) for user in queryset.with_roles().order_by(*LIST_ORDER)[: size + 1]]
    return UserPage(
        users=users[:size], page=None, size=size, total=None, has_more=len(users) > size
    )


# --- writes -----------------------------------------------------------------------


def _audit(by: str | None, user: User, flag: int, message: str) -> None:
    """An entry in the admin's History of ``user``: what the admin ``by`` did to
    it through the API (who, what, and when, as the admin's own edits are
    recorded), written in the change's own transaction. No entry without ``by``."""
    if by is None:
        return
    LogEntry.objects.create(
        user_id=parse_user_id(by),
        content_type=ContentType.objects.get_for_model(User),
        object_id=str(user.pk),
        object_repr=str(user)[:200],
        action_flag=flag,
        change_message=message,
    )


def _is_email_conflict(exc: IntegrityError) -> bool:
    # SQLite: "UNIQUE constraint failed: users_user.email";
    # MySQL/MariaDB: "Duplicate entry '...' for key 'email'".
    return "email" in str(exc).lower()


def _set_roles(user: User, roles: Iterable[str]) -> None:
    user.roles.set(Role.objects.filter(name__in=set(roles)))


def _lock_admin_changes() -> None:
    """Serialise every change of roles or activation (and every deletion) on
    one row: the ``admin`` role's. Deciding "would this leave no active admin"
    needs the other admins to hold still; locking their rows instead would
    deadlock two admins demoting themselves at once (each holding its own row,
    each waiting for the other's), and InnoDB answers a deadlock by failing one
    of them with an error instead of a rule. Always taken before a user row."""
    list(Role.objects.select_for_update().filter(name=Roles.ADMIN).values_list("name", flat=True))


def _locked(pk: uuid.UUID) -> User:
    try:
        return _users().select_for_update().get(pk=pk)
    except User.DoesNotExist:
        raise UserNotFound() from None


def _refuse_last_admin(user: User, *, stays_active: bool, stays_admin: bool) -> None:
    """Refuse a change that would leave no active admin: nobody would be left
    to manage users through the API. Runs under ``_lock_admin_changes``, in
    the transaction that makes the change, so two such changes cannot both
    count on the other admin."""
    was = user.is_active and Roles.ADMIN in user.role_names
    if not was or (stays_active and stays_admin):
        return
    others = _users().filter(is_active=True, roles__name=Roles.ADMIN).exclude(pk=user.pk)
    if not others.exists():
        raise LastAdmin()


def user_insert(
    *,
    name: str,
    email: str,
    password_hash: str,
    roles: Iterable[str],
    sync_status: str | None = None,
    by: str | None = None,
) -> UserRecord:
    """A new user with these roles (one transaction: never a user without them);
    ``by``: the admin who created it through the API (History)."""
    user = User(name=name, email=normalize_email(email), password=password_hash)
    if sync_status:
        user.sync_status = sync_status
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            _set_roles(user, roles)
            _audit(by, user, ADDITION, "Added through the API.")
            return _fresh(user.pk)
    except IntegrityError as exc:
        if _is_email_conflict(exc):
            raise EmailTaken() from None
        raise


def user_update_fields(
    *,
    user_id: str,
    changes: UserChanges,
    roles: Sequence[str] | None = None,
    by: str | None = None,
) -> UserRecord:
    """Store ``changes`` (and exactly ``roles``, when given) in one transaction.

    Fields already holding the value are left alone; with nothing to change
    this is a read. A change that would leave no active admin is refused with
    ``LastAdmin``, decided under the lock this transaction holds.
    """
    unknown = set(changes) - CHANGEABLE_FIELDS
    if unknown:
        raise ValueError(f"Not a changeable user field: {', '.join(sorted(unknown))}")
    pk = parse_user_id(user_id)
    guarded = roles is not None or "is_active" in changes
    pending = changes.get("pending_email")
    if pending and _users().by_email(pending).exclude(pk=pk).exists():
        # Taken now: refused now. Free now and taken before it is confirmed:
        # the confirmation is refused (user_email_confirm).
        raise EmailTaken()
    with transaction.atomic():
        if guarded:
            _lock_admin_changes()
        user = _locked(pk)
        fields = [name for name, value in changes.items() if getattr(user, name) != value]
        if guarded:
            _refuse_last_admin(
                user,
                stays_active=changes.get("is_active", user.is_active),
                stays_admin=Roles.ADMIN in roles if roles is not None else True,
            )
        if not fields and roles is None:
            return _fresh(pk)
        for name in fields:
            setattr(user, name, changes[name])  # type: ignore[literal-required]
        if fields:
            try:
                with transaction.atomic():
                    user.save(update_fields=[*fields, "updated_at"])
            except IntegrityError as exc:
                if _is_email_conflict(exc):
                    raise EmailTaken() from None
                raise
        if roles is not None:
            _set_roles(user, roles)
            if not fields:
                user.save(update_fields=["updated_at"])
        changed = [*fields, *(["roles"] if roles is not None else [])]
        _audit(by, user, CHANGE, f"Changed {', '.join(changed)} through the API.")
        # Read under the row lock, before the commit: the answer is this
        # change, whole, not a concurrent one that commits right after it.
        return _fresh(pk)


def _store_password_hash(
    pk: uuid.UUID, password_hash: str, *, keep_session: str | None, old_hash: str | None = None
) -> bool:
    """The new hash (only over ``old_hash`` when given), and, once it commits,
    ``users.signals.password_changed``. False when no row matched."""
    rows = _users().filter(pk=pk)
    if old_hash is not None:
        rows = rows.filter(password=old_hash)
    with transaction.atomic():
        if not rows.update(password=password_hash, updated_at=timezone.now()):
            return False
        invalidate([str(pk)])  # ``update`` sends no signal; the record's updated_at moved
        transaction.on_commit(
            lambda: password_changed.send(sender=User, user_id=str(pk), keep_session=keep_session)
        )
    return True


def user_set_password_hash(
    *, user_id: str, password_hash: str, keep_session: str | None = None
) -> None:
    """Store a new password hash. Once it commits, ``users.signals.password_changed``
    goes out (as ``User.save`` sends it for the admin's and the shell's
    changes), and authn ends every session of the user but ``keep_session``
    (a refresh-token jti: the caller's own)."""
    if not _store_password_hash(parse_user_id(user_id), password_hash, keep_session=keep_session):
        raise UserNotFound()


def user_password_hash_replace(*, user_id: str, old_hash: str, new_hash: str) -> bool:
    """A password reset: ``new_hash`` in place of ``old_hash``, compare-and-set,
    so of two uses of one reset link (which hashes ``old_hash``) one wins and
    the other finds the hash changed (False). Every session of the user ends
    once it commits (``password_changed``, no session kept)."""
    return _store_password_hash(
        parse_user_id(user_id), new_hash, keep_session=None, old_hash=old_hash
    )


def user_password_hash_upgrade(*, user_id: str, old_hash: str, new_hash: str) -> bool:
    """Replace ``old_hash`` by a stronger hash of the same password (Django's
    upgrade on a successful login): no password change, so no session ends.

    Compare-and-set in one statement: if the password changed since
    ``old_hash`` was read, the new password stays, and the old one is not
    brought back by its own upgrade. True when the upgrade was stored.
    """
    upgraded = _users().filter(pk=parse_user_id(user_id), password=old_hash)
    return bool(upgraded.update(password=new_hash))


def user_email_confirm(*, user_id: str, email: str) -> UserRecord:
    """Mark ``email`` confirmed: the user's address is verified, or their
    pending address becomes their address (``EmailTaken`` if someone took it
    meanwhile). ``email`` must still be the address waiting for confirmation,
    else ``VerificationLinkInvalid`` (the user changed it again)."""
    pk = parse_user_id(user_id)
    with transaction.atomic():
        user = _locked(pk)
        if user.pending_email and user.pending_email == email:
            user.email, user.pending_email, user.email_verified = email, "", True
            fields = ["email", "pending_email", "email_verified"]
        elif not user.pending_email and user.email == email and not user.email_verified:
            user.email_verified, fields = True, ["email_verified"]
        else:
            raise VerificationLinkInvalid()
        try:
            with transaction.atomic():
                user.save(update_fields=[*fields, "updated_at"])
        except IntegrityError as exc:
            if _is_email_conflict(exc):
                raise EmailTaken() from None
            raise
        return _fresh(pk)


def mail_enqueue(*, kind: str, email: str = "", user_id: str = "") -> None:
    """Queue an account mail (``users.tasks``) once the caller's transaction
    commits (at once outside one). For ``email`` or ``user_id``: the worker
    looks the user up when it sends, so this costs the same whether anyone
    has that address or not."""
    if kind not in MAIL_KINDS:
        raise ValueError(f"Not an account mail: {kind}")
    transaction.on_commit(lambda: account_mail.enqueue(kind=kind, email=email, user_id=user_id))


def user_login_record(*, user_id: str) -> None:
    """Stamp ``last_login`` (as Django's admin login does). One UPDATE, no
    signal: the cached record holds no ``last_login``, so nothing to invalidate."""
    _users().filter(pk=parse_user_id(user_id)).update(last_login=timezone.now())


def user_delete(*, user_id: str, by: str | None = None) -> None:
    """Delete a user; refused (``LastAdmin``) for the last active admin; ``by``:
    the admin who deleted it through the API (History)."""
    pk = parse_user_id(user_id)
    with transaction.atomic():
        _lock_admin_changes()
        user = _locked(pk)
        _refuse_last_admin(user, stays_active=False, stays_admin=False)
        _audit(by, user, DELETION, "Deleted through the API.")
        _users().filter(pk=pk).delete()
    invalidate([str(pk)])


def users_update_many(
    *, user_ids: Iterable[str], sync_status: str | None = None, is_active: bool | None = None
) -> list[str]:
    """Bulk update (the admin's actions, which are not held to the last-admin
    rule: the admin site is the operators' way back in); returns the ids of
    the users it changed: those that already had the values are left alone
    (and not counted). ``QuerySet.update`` sends no signals, so invalidate here."""
    values: dict[str, Any] = {}
    if sync_status is not None:
        values["sync_status"] = sync_status
    if is_active is not None:
        values["is_active"] = is_active
    ids = [str(parse_user_id(user_id)) for user_id in user_ids]
    if not values:
        return []
    with transaction.atomic():
        already = Q(**values)
        changing = _users().filter(pk__in=ids).exclude(already).select_for_update()
        changed = [str(pk) for pk in changing.values_list("pk", flat=True)]
        _users().filter(pk__in=changed).update(**values, updated_at=timezone.now())
        invalidate(changed)
    return changed


def user_model_for_login(*, user_id: str) -> User:
    """The model itself, for ``authn.backends`` alone: Django's ``authenticate()``
    must hand ``login()`` a model (it stores its pk and password hash in the
    session). Nothing else may take a model out of this module."""
    try:
        with primary():
            return _users().get(pk=parse_user_id(user_id))
    except User.DoesNotExist:
        raise UserNotFound() from None
