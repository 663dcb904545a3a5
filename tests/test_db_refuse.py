"""Tiers without a database: every ORM use raises, naming what it tried."""

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction

from arcana.db.refuse.base import SQL_SHOWN_CHARS, HiddenDatabaseUse
from tests.commands import refusal, run_manage
from tests.jwtkeys import tier_keys
from users.models import User

ALIAS = "no_database"
PREFIX = "this tier has no database; hidden ORM use: "
SERVICE_ENV = {
    "ARCANA_MODE": "layered",
    "ARCANA_TIER": "service",
    "ARCANA_REPOSITORY_ADDR": "repository:50053",
    # The service tier builds its repository clients at start-up: plaintext
    # must be allowed explicitly (tests/internal checks the refusal).
    "ARCANA_INTERNAL_INSECURE": "true",
    **tier_keys("service"),
}
CONTROLLER_ENV = {
    "ARCANA_MODE": "layered",
    "ARCANA_TIER": "controller",
    "ARCANA_SERVICE_ADDR": "service:50052",
    "ARCANA_INTERNAL_INSECURE": "true",
    **tier_keys("controller"),
}


@pytest.fixture
def refused() -> Iterator[str]:
    """A connection alias on the refusing engine, beside the test database."""
    configured = connections.configure_settings(
        {"default": {}, ALIAS: {"ENGINE": "arcana.db.refuse", "NAME": ""}}
    )
    connections.settings[ALIAS] = configured[ALIAS]
    try:
        yield ALIAS
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def _raised(action: object) -> str:
    with pytest.raises(HiddenDatabaseUse) as caught:
        action()  # type: ignore[operator]
    return str(caught.value)


# --- the engine -----------------------------------------------------------------------


def test_a_read_names_its_sql(refused: str) -> None:
    message = _raised(lambda: User.objects.using(refused).filter(email="a@example.com").first())
    assert message.startswith(PREFIX + 'SELECT "users_user"."password",')
    assert '"users_user"."email" = %s' in message
    # The parameters stay out: they may be a password hash or a token.
    assert "a@example.com" not in message


def test_count_exists_and_iteration_raise(refused: str) -> None:
    users = User.objects.using(refused)
    assert _raised(users.count) == PREFIX + 'SELECT COUNT(*) AS "__count" FROM "users_user"'  # noqa: S608
    assert _raised(users.exists) == PREFIX + 'SELECT %s AS "a" FROM "users_user" LIMIT 1'  # noqa: S608
    assert _raised(lambda: list(users.all())).startswith(PREFIX + "SELECT")


def test_a_write_raises_before_reaching_anything(refused: str) -> None:
    message = _raised(
        lambda: User.objects.using(refused).create(name="N", email="n@example.com", password="x")
    )
    assert message.startswith(PREFIX + 'INSERT INTO "users_user"')
    users = User.objects.using(refused)
    assert _raised(lambda: users.filter(name="N").update(name="M")).startswith(PREFIX + "UPDATE")


def test_a_transaction_raises(refused: str) -> None:
    def atomic() -> None:
        with transaction.atomic(using=refused):
            pass

    assert _raised(atomic) == PREFIX + "a transaction (transaction.atomic or a write)"


def test_raw_cursor_and_connection_raise(refused: str) -> None:
    connection = connections[refused]

    def raw_query() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    assert _raised(raw_query) == PREFIX + "SELECT 1"
    assert _raised(lambda: connection.cursor().fetchone()) == PREFIX + "cursor.fetchone"
    assert _raised(connection.ensure_connection) == PREFIX + "a database connection"
    assert _raised(connection.connect) == PREFIX + "a database connection"


def test_long_sql_is_cut(refused: str) -> None:
    ids = [f"{n:032x}" for n in range(500)]
    message = _raised(lambda: list(User.objects.using(refused).filter(id__in=ids)))
    assert len(message) == len(PREFIX) + SQL_SHOWN_CHARS + 1
    assert message.endswith("…")


def test_closing_is_harmless(refused: str) -> None:
    """Django closes connections at the end of every request: that must not raise."""
    connection = connections[refused]
    connection.close()
    connection.close_if_unusable_or_obsolete()
    assert connection.connection is None


def test_it_is_a_configuration_error_not_a_database_outage() -> None:
    """An outage answers 503 (OperationalError); this is a layering bug."""
    from arcana.core.exceptions import DATABASE_DOWN_ERRORS

    assert issubclass(HiddenDatabaseUse, ImproperlyConfigured)
    assert not issubclass(HiddenDatabaseUse, DATABASE_DOWN_ERRORS)


# --- the settings choose it ------------------------------------------------------------


def _import_base(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    for name in ("DATABASE_URL", "ARCANA_MODE", "ARCANA_TIER", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    saved = sys.modules.pop("arcana.settings.base", None)
    try:
        return importlib.import_module("arcana.settings.base")
    finally:
        if saved is not None:
            sys.modules["arcana.settings.base"] = saved


@pytest.mark.parametrize("env", [SERVICE_ENV, CONTROLLER_ENV], ids=["service", "controller"])
def test_tiers_without_the_database_get_the_refusing_engine(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    base = _import_base(monkeypatch, env)
    assert base.DATABASES == {"default": {"ENGINE": "arcana.db.refuse", "NAME": ""}}


@pytest.mark.parametrize(
    "env",
    [{}, {"ARCANA_MODE": "layered", "ARCANA_TIER": "repository"}],
    ids=["monolithic", "repository"],
)
def test_tiers_with_the_database_keep_database_url(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    base = _import_base(monkeypatch, {**env, "DATABASE_URL": "mysql://u:p@db.example:3306/arcana"})
    database = base.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.mysql"
    assert (database["HOST"], database["NAME"]) == ("db.example", "arcana")


@pytest.mark.parametrize(
    ("env", "tier"), [(SERVICE_ENV, "service"), (CONTROLLER_ENV, "controller")]
)
def test_database_url_is_refused_where_there_is_no_database(env: dict[str, str], tier: str) -> None:
    result = run_manage("check", env={**env, "DATABASE_URL": "mysql://u:p@db.example:3306/a"})
    assert refusal(result) == (
        f"DATABASE_URL must not be set for the {tier} tier: "
        "only the repository tier holds the database credentials."
    )


def test_hidden_orm_use_fails_a_service_tier_process() -> None:
    """The whole way: settings pick the engine, an ORM call in the process raises."""
    code = "from users.models import User; User.objects.filter(is_active=True).count()"
    result = run_manage("shell", "-c", code, env=SERVICE_ENV)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "arcana.db.refuse.base.HiddenDatabaseUse: " + PREFIX + 'SELECT COUNT(*) AS "__count" '
        'FROM "users_user" WHERE "users_user"."is_active"'
    )
