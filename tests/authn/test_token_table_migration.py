"""Sessions survive the move from simplejwt's token_blacklist tables to authn's own."""

import importlib
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from authn.models import RefreshToken

migration = importlib.import_module("authn.migrations.0001_refresh_tokens")

OLD_TABLES = {
    "token_blacklist_outstandingtoken": (
        "id INTEGER PRIMARY KEY, user_id CHAR(32) NULL, jti VARCHAR(255) NOT NULL, "
        "token TEXT NOT NULL, created_at DATETIME NULL, expires_at DATETIME NOT NULL"
    ),
    "token_blacklist_blacklistedtoken": (
        "id INTEGER PRIMARY KEY, token_id INTEGER NOT NULL, blacklisted_at DATETIME NOT NULL"
    ),
    "authn_refreshtokenlineage": "jti VARCHAR(255) PRIMARY KEY, family VARCHAR(255) NOT NULL",
}


@pytest.fixture
def old_tables() -> Iterator[None]:
    with connection.cursor() as cursor:
        for name, columns in OLD_TABLES.items():
            cursor.execute(f"CREATE TABLE {name} ({columns})")
    yield
    with connection.cursor() as cursor:
        for name in OLD_TABLES:
            cursor.execute(f"DROP TABLE {name}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_live_and_revoked_tokens_and_their_families_are_copied(old_tables: None) -> None:
    user = uuid.uuid4()
    now = timezone.now().replace(microsecond=0)
    later = now + timedelta(days=1)
    with connection.cursor() as cursor:
        insert = (
            "INSERT INTO token_blacklist_outstandingtoken "
            "(id, user_id, jti, token, created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s)"
        )
        cursor.execute(insert, [1, user.hex, "first", "t1", now, later])
        cursor.execute(insert, [2, user.hex, "second", "t2", now, later])
        cursor.execute(insert, [3, None, "orphan", "t3", now, later])  # its user was deleted
        cursor.execute(
            "INSERT INTO token_blacklist_blacklistedtoken (id, token_id, blacklisted_at) "
            "VALUES (%s, %s, %s)",
            [1, 1, now],
        )
        cursor.execute(
            "INSERT INTO authn_refreshtokenlineage (jti, family) VALUES (%s, %s)",
            ["second", "first"],
        )
    with connection.schema_editor() as editor:
        migration.copy_old_tokens(apps, editor)
    copied = {row.jti: row for row in RefreshToken.objects.all()}
    assert set(copied) == {"first", "second"}
    assert {row.user_id for row in copied.values()} == {str(user)}
    assert copied["first"].family == copied["second"].family == "first"
    assert copied["first"].revoked_at is not None
    assert copied["second"].revoked_at is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_database_without_the_old_tables_copies_nothing() -> None:
    with connection.schema_editor() as editor:
        migration.copy_old_tokens(apps, editor)
    assert not RefreshToken.objects.exists()
