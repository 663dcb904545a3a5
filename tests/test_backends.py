"""CI's second pass must really run on MariaDB + Redis, never silently on SQLite."""

import os

import pytest
from django.conf import settings
from django.db import connection


def test_backends_match_what_ci_asked_for() -> None:
    expected = {name for name in os.environ.get("ARCANA_EXPECT_BACKENDS", "").split(",") if name}
    cache_backend = settings.CACHES["default"]["BACKEND"]
    if "mysql" in expected:
        assert connection.vendor == "mysql"
    else:
        assert connection.vendor in {"sqlite", "mysql"}
    if "redis" in expected:
        assert cache_backend == "arcana.core.cache.FailOpenRedisCache"
    if not expected:
        # The plain `make test` run: SQLite unless DATABASE_URL says otherwise.
        assert connection.vendor == (
            "mysql" if os.environ.get("DATABASE_URL", "").startswith("mysql") else "sqlite"
        )


@pytest.mark.django_db
def test_mysql_connections_use_utf8mb4() -> None:
    if connection.vendor != "mysql":
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@character_set_connection")
        assert cursor.fetchone()[0] == "utf8mb4"
