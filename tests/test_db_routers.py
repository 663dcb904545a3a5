"""The read-replica router's decisions (arcana/db/routers.py) and its settings.

The suite has no replica (replicas are a test mirror of ``default`` whenever
they are configured), so the router here serves a replica that exists in name
only: it records where each read would go and lets every query run on the
test database. ``tests/live/test_replicas.py`` runs the real thing, on a
MariaDB primary and replica of its own.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Model
from django.test import Client
from django.utils import timezone

from arcana.core.cache import breaker
from arcana.core.context import call_context
from arcana.core.reads import primary
from arcana.db import routers
from arcana.db.routers import ReplicaRouter, Verdict, replication_verdict
from authn.models import RefreshToken
from tests.commands import refusal, run_manage
from tests.factories import UserFactory
from tests.test_db_refuse import CONTROLLER_ENV, SERVICE_ENV
from users import repository
from users.models import User

REPLICA = "replica1"
STATUS = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes"}
LAG = "Seconds_Behind_Master"


class RecordingRouter(ReplicaRouter):
    """Decides as the real router does over one replica (``replica_ready``
    stands for its health), records the decision, and reads the primary."""

    def __init__(self) -> None:
        super().__init__(replicas=[REPLICA])
        self.reads: list[tuple[str, str | None]] = []
        self.replica_ready = True

    def _usable(self) -> list[Any]:
        return self.replicas if self.replica_ready else []

    def _connected(self, replica: Any) -> bool:
        return True

    def _transaction_alias(self) -> str | None:
        return DEFAULT_DB_ALIAS if connections[DEFAULT_DB_ALIAS].in_atomic_block else None

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        self.reads.append((model._meta.label, super().db_for_read(model, **hints)))
        return DEFAULT_DB_ALIAS

    def last(self, label: str = "users.User") -> str | None:
        return next(chosen for read, chosen in reversed(self.reads) if read == label)

    def chosen(self) -> set[str | None]:
        return {chosen for _, chosen in self.reads}


@pytest.fixture
def recording(settings: Any) -> Iterator[RecordingRouter]:
    installed = RecordingRouter()
    settings.DATABASE_ROUTERS = [installed]
    request_started.send(sender=None)  # no call state left over from another test
    yield installed
    request_finished.send(sender=None)


@contextmanager
def call(*, request: str, actor: str | None = None) -> Iterator[None]:
    """One REST request or RPC as the transports run it: signals around the context."""
    request_started.send(sender=None)
    try:
        with call_context(request=request, actor=actor):
            yield
    finally:
        request_finished.send(sender=None)


def read_users() -> None:
    list(User.objects.filter(is_active=True))


# --- where reads go -------------------------------------------------------------------

# Transactions as in production; serialized_rollback, as tests/grpc does: keeps
# transactional tests order-independent (the flush would drop migrated rows).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_reads_of_users_go_to_a_replica_until_the_call_writes(
    recording: RecordingRouter,
) -> None:
    user = UserFactory.create()
    with call(request="r1"):
        read_users()
        assert recording.last() == REPLICA
        User.objects.filter(pk=user.pk).update(name="Renamed")
        read_users()
        assert recording.last() == DEFAULT_DB_ALIAS  # its own write, within the call


def test_reads_in_a_transaction_and_in_a_primary_block_go_to_the_primary(
    recording: RecordingRouter,
) -> None:
    with call(request="r1"):
        with transaction.atomic():
            read_users()
        assert recording.last() == DEFAULT_DB_ALIAS
        with primary():
            read_users()
        assert recording.last() == DEFAULT_DB_ALIAS
        read_users()
        assert recording.last() == REPLICA


def test_outside_a_call_reads_go_to_the_primary(recording: RecordingRouter) -> None:
    """Commands, migrations (their data steps name no database) and the shell."""
    read_users()
    assert recording.last() == DEFAULT_DB_ALIAS


def test_token_tables_are_read_on_the_primary_and_their_writes_pin_nobody(
    recording: RecordingRouter,
) -> None:
    user = UserFactory.create()
    with call(request="r1", actor="refresher"):
        RefreshToken.objects.filter(jti="nope").exists()
        now = timezone.now()
        RefreshToken.objects.create(
            jti="j1", user_id=str(user.pk), family="j1", token="t", created_at=now, expires_at=now
        )
        read_users()
        assert recording.last() == REPLICA  # no user changed
    assert recording.last("authn.RefreshToken") == DEFAULT_DB_ALIAS
    assert cache.get(routers.PIN_KEY.format("user:refresher")) is None


def test_a_writer_reads_the_primary_in_their_next_calls_and_nobody_else_does(
    recording: RecordingRouter,
) -> None:
    user = UserFactory.create()
    with call(request="r1", actor="writer"):
        User.objects.filter(pk=user.pk).update(name="Renamed")
    assert cache.get(routers.PIN_KEY.format("user:writer")) is True
    with call(request="r2", actor="writer"):  # another request, process or protocol
        read_users()
        assert recording.last() == DEFAULT_DB_ALIAS
    with call(request="r3", actor="someone-else"):
        read_users()
        assert recording.last() == REPLICA


def test_an_anonymous_write_pins_its_request_across_internal_calls(
    recording: RecordingRouter,
) -> None:
    user = UserFactory.create()
    # Layered mode: one public request, two internal calls to the repository tier.
    with call(request="register-1"):
        User.objects.filter(pk=user.pk).update(name="Renamed")
    with call(request="register-1"):
        read_users()
        assert recording.last() == DEFAULT_DB_ALIAS
    with call(request="another"):
        read_users()
        assert recording.last() == REPLICA


def test_the_pin_is_looked_up_once_per_call(
    recording: RecordingRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    real_get = cache.get

    def get(key: str, *args: Any) -> Any:
        looked_up.append(key)
        return real_get(key, *args)

    monkeypatch.setattr(cache, "get", get)
    with call(request="r1", actor="reader"):
        for _ in range(3):
            read_users()
    assert looked_up == [routers.PIN_KEY.format("user:reader")]


def test_without_the_cache_or_a_usable_replica_reads_go_to_the_primary(
    recording: RecordingRouter,
) -> None:
    breaker.failed(ConnectionError("test: Redis unreachable"))
    try:
        with call(request="r1", actor="reader"):
            read_users()
        assert recording.last() == DEFAULT_DB_ALIAS  # pins cannot be read: assume one
    finally:
        breaker.succeeded()
    recording.replica_ready = False
    with call(request="r2", actor="reader"):
        read_users()
    assert recording.last() == DEFAULT_DB_ALIAS


def test_migrations_run_on_the_primary_only() -> None:
    router = ReplicaRouter(replicas=[REPLICA])
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "users") is True
    assert router.allow_migrate(REPLICA, "users") is False


# --- what the repository asks for ----------------------------------------------------


def test_credentials_and_password_hashes_are_read_on_the_primary(
    recording: RecordingRouter,
) -> None:
    user = UserFactory.create(email="fresh@example.com")
    with call(request="login"):
        assert repository.user_credentials(email="fresh@example.com") is not None
        repository.user_password_hash(user_id=str(user.pk))
    assert recording.chosen() == {DEFAULT_DB_ALIAS}


def test_a_user_written_moments_ago_is_read_on_the_primary(
    recording: RecordingRouter, settings: Any
) -> None:
    user = UserFactory.create()
    user_id = str(user.pk)
    repository.invalidate([user_id])  # what every write of the user leaves: a tombstone
    with call(request="r1", actor="reader"):
        repository.user_get(user_id=user_id)
    assert recording.last() == DEFAULT_DB_ALIAS
    cache.delete(repository._key(user_id))  # the tombstone has expired
    with call(request="r2", actor="reader"):
        repository.user_get(user_id=user_id)
    assert recording.last() == REPLICA
    settings.USER_CACHE = False  # nothing would tell a recent write apart
    with call(request="r3", actor="reader"):
        repository.user_get(user_id=user_id)
    assert recording.last() == DEFAULT_DB_ALIAS


def test_a_tombstone_outlives_the_pin(settings: Any) -> None:
    settings.DATABASE_REPLICA_PIN_SECONDS = 30
    assert repository._tombstone_seconds() == 30
    settings.DATABASE_REPLICA_PIN_SECONDS = 1
    assert repository._tombstone_seconds() == repository.TOMBSTONE_SECONDS


def test_the_user_list_reads_a_replica_in_one_transaction(recording: RecordingRouter) -> None:
    UserFactory.create_batch(3)
    recording.reads.clear()
    with call(request="r1", actor="admin"):
        page = repository.user_list(page=0, size=2, sync_status=None, search=None)
    assert (len(page.users), page.total) == (2, 3)
    assert recording.reads[0] == ("users.User", REPLICA)


def test_an_operators_admin_session_names_them_as_the_acting_user(
    recording: RecordingRouter,
) -> None:
    operator = User.objects.create_superuser(email="op@example.com", name="Op", password="x")
    someone = UserFactory.create()
    client = Client()
    client.force_login(operator)
    recording.reads.clear()
    response = client.post(
        "/admin/users/user/",
        {"action": "mark_pending_sync", "_selected_action": [str(someone.pk)]},
    )
    assert response.status_code == 302
    assert cache.get(routers.PIN_KEY.format(f"user:{operator.pk}")) is True
    # The session's user came from the primary (authn.backends): a deactivation
    # counts at once. (The change list itself may read a replica.)
    assert recording.reads[:2] == [
        ("sessions.Session", DEFAULT_DB_ALIAS),
        ("users.User", DEFAULT_DB_ALIAS),
    ]


# --- replica health ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "usable", "reason"),
    [
        (None, False, "not replicating (no replica status)"),
        (
            {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "No", "Seconds_Behind_Master": None},
            False,
            "not replicating (IO thread Yes, SQL thread No)",
        ),
        (
            {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": None},
            False,
            "replication lag unknown",
        ),
        (
            {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 3},
            False,
            "3 s behind the primary (at most 2 s allowed)",
        ),
        (
            {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 2},
            True,
            "2 s behind the primary",
        ),
        (  # MySQL 8's names
            {"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": 0},
            True,
            "0 s behind the primary",
        ),
    ],
)
def test_replication_verdict(status: dict[str, Any] | None, usable: bool, reason: str) -> None:
    verdict = replication_verdict(status, max_lag=2)
    assert (verdict.usable, verdict.reason) == (usable, reason)


def test_verdicts_count_while_lag_and_age_stay_in_the_window(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 2
    settings.DATABASE_REPLICA_CHECK_SECONDS = 1
    router = ReplicaRouter(replicas=[REPLICA])
    replica = router.replicas[0]
    assert router.fresh_and_usable(0.0) == []  # not looked at yet
    with caplog.at_level(logging.WARNING, logger="arcana.db.replicas"):
        router.record(replica, replication_verdict(STATUS | {LAG: 0}, max_lag=2), 100.0)
        router.record(replica, replication_verdict(STATUS | {LAG: 0}, max_lag=2), 101.0)
    assert router.fresh_and_usable(105.0) == [replica]  # 0 s behind, 4 s ago: within 2 + 2
    assert router.fresh_and_usable(105.5) == []  # the monitor is late: trust it no more
    router.record(replica, replication_verdict(STATUS | {LAG: 2}, max_lag=2), 110.0)
    assert router.fresh_and_usable(112.0) == [replica]
    assert router.fresh_and_usable(112.5) == []  # found further behind: trusted less long
    with caplog.at_level(logging.WARNING, logger="arcana.db.replicas"):
        router.record(replica, Verdict(False, "unreachable (refused)"), 113.0)
        router.record(replica, Verdict(False, "unreachable (refused)"), 114.0)
    assert router.fresh_and_usable(114.0) == []
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [  # each change once
        "replica replica1 in use: 0 s behind the primary",
        "replica replica1 not used: unreachable (refused); its reads go to the primary",
    ]


def test_the_probe_reads_the_replication_status_of_a_mysql_server() -> None:
    """On this suite's database: SQLite reports no lag; MariaDB (CI's second
    pass) is no replica."""
    verdict = routers.probe(DEFAULT_DB_ALIAS)
    if connections[DEFAULT_DB_ALIAS].vendor == "mysql":
        assert verdict == Verdict(False, "not replicating (no replica status)")
    else:
        assert verdict == Verdict(True, "sqlite: lag not measured")


# --- settings ------------------------------------------------------------------------

REPLICAS = "mysql://u:p@replica-a:3306/arcana,mysql://u:p@replica-b:3306/arcana"


def _databases(**env: str) -> str:
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASE_ROUTERS); "
        "[print(a, d['HOST'], d['OPTIONS']['connect_timeout'], d['TEST']['MIRROR']) "
        "for a, d in s.DATABASES.items() if a != 'default']"
    )
    result = run_manage("shell", "--verbosity", "0", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_replica_urls_become_aliases_mirrored_in_tests() -> None:
    out = _databases(DATABASE_URL="mysql://u:p@primary:3306/arcana", DATABASE_REPLICA_URLS=REPLICAS)
    assert out.splitlines() == [
        "['arcana.db.routers.ReplicaRouter']",
        "replica1 replica-a 1 default",
        "replica2 replica-b 1 default",
    ]
    assert _databases() == "[]"  # no replicas, no router


@pytest.mark.parametrize(
    ("env", "tier"), [(SERVICE_ENV, "service"), (CONTROLLER_ENV, "controller")]
)
def test_replica_urls_are_refused_where_there_is_no_database(
    env: dict[str, str], tier: str
) -> None:
    result = run_manage("check", env={**env, "DATABASE_REPLICA_URLS": REPLICAS})
    assert refusal(result) == (
        f"DATABASE_REPLICA_URLS must not be set for the {tier} tier: "
        "only the repository tier holds the database credentials."
    )


def test_a_pin_shorter_than_a_replica_can_lag_is_refused() -> None:
    result = run_manage(
        "check",
        env={
            "DATABASE_URL": "mysql://u:p@primary:3306/arcana",
            "DATABASE_REPLICA_URLS": REPLICAS,
            "DATABASE_REPLICA_PIN_SECONDS": "4",
            "DATABASE_REPLICA_MAX_LAG_SECONDS": "2",
        },
    )
    assert refusal(result).startswith(
        "DATABASE_REPLICA_PIN_SECONDS must be at least DATABASE_REPLICA_MAX_LAG_SECONDS + "
        "2 * DATABASE_REPLICA_CHECK_SECONDS + 1 (5):"
    )


def test_a_replica_on_another_engine_is_refused() -> None:
    result = run_manage("check", env={"DATABASE_REPLICA_URLS": "mysql://u:p@replica:3306/a"})
    assert refusal(result) == (
        "DATABASE_REPLICA_URLS: replica 1 is django.db.backends.mysql, the primary "
        "django.db.backends.sqlite3: a replica is a copy of the primary."
    )
