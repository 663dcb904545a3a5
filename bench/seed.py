"""Seed many users fast: ``python -m bench.seed --users 1000000`` (``make seed``).

Into the database ``DATABASE_URL`` names (MariaDB/MySQL; SQLite works too, for
tests), after ``manage.py migrate`` on it. The ORM's ``bulk_create`` hashes
nothing but still builds a model per row; this writes multi-row ``INSERT``
statements of ``--batch`` rows straight through the connection's cursor, with
one password hash computed up front (every seeded user has the password
``SEED_PASSWORD``), the ``user`` role for all and ``admin`` for one in a
hundred through the many-to-many table, in one transaction per batch.

Reusable and idempotent: seeded addresses are ``seed-<n>@bench.example``;
a run counts the users already there and adds only what is missing (a run
that was stopped half way resumes at the next number), and does nothing when
the count is reached.

The rows mix what the list filters and search look at: names from a small
list of first and last names plus the number (``search=smith`` matches about
one row in eight, ``search=seed-0000042`` one), ``sync_status`` synced 80 %,
pending 15 %, failed 5 %, ``is_active`` false for one in twenty, and
``created_at`` one second apart with every tenth pair sharing a timestamp (so
keyset pagination's ``id`` tie-breaker is exercised).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

SEED_PASSWORD = "seeded users' passphrase 1M"  # noqa: S105 - a bench user's, not a secret
SEED_DOMAIN = "bench.example"
FIRST = ("Ann", "Bob", "Chen", "Dana", "Eve", "Farid", "Gita", "Hugo")
LAST = ("Smith", "Okafor", "Nakamura", "Garcia", "Novak", "Larsen", "Haddad", "Kowalski")
# Seeded users' timestamps start here and go one second up per user.
EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def seed_row(number: int, password_hash: str) -> tuple[Any, ...]:
    """The users_user row of seeded user ``number`` (deterministic but the id)."""
    second = number - (number % 20 == 1)  # every tenth pair shares a timestamp
    created = EPOCH + dt.timedelta(seconds=second)
    status = "failed" if number % 20 == 7 else "pending" if number % 20 in (3, 9, 13) else "synced"
    name = f"{FIRST[number % 8]} {LAST[(number // 8) % 8]} {number}"
    return (
        uuid.uuid4(),
        password_hash,
        name,
        f"seed-{number:07d}@{SEED_DOMAIN}",
        status,
        number % 20 != 5,  # is_active
        number % 100 == 0,  # is_staff: the admins
        created,
    )


def _batches(start: int, stop: int, size: int) -> Iterator[range]:
    for first in range(start, stop, size):
        yield range(first, min(first + size, stop))


def _insert(cursor: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * len(rows))  # noqa: S608 - fixed names
    cursor.execute(sql, [value for values in rows for value in values])


def seed(users: int, batch: int = 5000, verbose: bool = True) -> int:
    """Bring the number of users up to ``users``; returns how many were added."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction

    from users.models import Role, User

    existing = User.objects.count()
    if existing >= users:
        if verbose:
            print(f"seed: {existing} users already there (asked for {users}); nothing to do")
        return 0
    seeded = User.objects.filter(email__endswith=f"@{SEED_DOMAIN}", email__startswith="seed-")
    # Numbers are zero-padded: the greatest address holds the greatest number.
    last = seeded.order_by("-email").values_list("email", flat=True).first()
    start = int(last.split("@")[0].removeprefix("seed-")) + 1 if last else 0
    missing = users - existing
    password_hash = make_password(SEED_PASSWORD)
    Role.objects.get_or_create(name="user")
    Role.objects.get_or_create(name="admin")
    ops = connection.ops
    table = ops.quote_name(User._meta.db_table)
    roles_table = ops.quote_name(User.roles.through._meta.db_table)
    columns: tuple[str, ...] = (
        "id",
        "password",
        "name",
        "email",
        "sync_status",
        "is_active",
        "is_staff",
    )
    columns = (
        *columns,
        "created_at",
        "updated_at",
        "is_superuser",
        "email_verified",
        "pending_email",
    )
    started = time.monotonic()
    added = 0
    mysql = connection.vendor == "mysql"
    for numbers in _batches(start, start + missing, batch):
        rows, links = [], []
        for number in numbers:
            user_id, *rest, created = seed_row(number, password_hash)
            key = user_id if connection.features.has_native_uuid_field else user_id.hex
            stamp_db = ops.adapt_datetimefield_value(created)
            # Seeded addresses count as verified, none waits for confirmation.
            rows.append((key, *rest, stamp_db, stamp_db, False, True, ""))
            links.append((key, "user"))
            if rest[-1]:  # is_staff: an admin too
                links.append((key, "admin"))
        with transaction.atomic(), connection.cursor() as cursor:
            if mysql:
                # Each batch's addresses are new and the roles exist: skip the
                # per-row unique and foreign-key lookups.
                cursor.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
            _insert(cursor, table, columns, rows)
            _insert(cursor, roles_table, ("user_id", "role_id"), links)
            if mysql:
                cursor.execute("SET SESSION unique_checks = 1, foreign_key_checks = 1")
        added += len(rows)
        if verbose and (added % (batch * 20) == 0 or added == missing):
            rate = added / max(time.monotonic() - started, 1e-9)
            print(f"seed: {existing + added}/{users} users ({rate:,.0f} rows/s)", flush=True)
    if mysql and not connection.in_atomic_block:  # ANALYZE commits (not in a test's transaction)
        # Fresh statistics: InnoDB's, taken while the tables were nearly empty,
        # make the optimizer read the roles table by role (a million rows)
        # for a page's 20 users (measured: 750 ms for a prefetch, 1 ms after).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE {table}, {roles_table}")
            cursor.fetchall()
    if verbose:
        print(f"seed: added {added} users in {time.monotonic() - started:.0f} s")
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="how many users in all")
    parser.add_argument("--batch", type=int, default=5000, help="rows per INSERT statement")
    args = parser.parse_args(argv)
    if args.users < 0 or args.batch < 1:
        parser.error("--users must be >= 0 and --batch >= 1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcana.settings.local")
    import django

    django.setup()
    seed(args.users, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
