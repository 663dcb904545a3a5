"""Reads on read replicas, everything else on the primary (``DATABASE_REPLICA_URLS``).

The settings add one database alias per replica (``replica1``, ``replica2``,
...) and install :class:`ReplicaRouter` only when replicas are configured.

Where a query goes:

- Writes, and every query inside a transaction on the primary: the primary.
  Migrations run on the primary only (replicas get them through replication).
- Reads of the users app's models (users, roles): a usable replica, picked at
  random, unless one of these sends them to the primary:

  * the call (REST request, gRPC call, internal call of layered mode) has
    written users or roles: read-your-writes within a call;
  * the acting user wrote in an earlier call that ended less than
    ``DATABASE_REPLICA_PIN_SECONDS`` ago (an anonymous call counts by its
    request id): read-your-writes across calls. A call that wrote leaves a pin
    in the shared cache when it ends, so it holds across processes, hosts,
    REST and gRPC, and the tiers of layered mode (the request id and the
    acting user travel with every internal call). A call reads the pin at
    most once, and only when it would otherwise read a replica;
  * the read runs outside any call: ``manage.py`` commands, migrations
    (whose data steps read without naming a database, and on MySQL outside
    a transaction, while the replica may not have the new table yet), the
    shell;
  * the block runs under :func:`arcana.core.reads.primary` (credential
    checks, password hashes: fresh for everyone, not only for the writer);
  * the shared cache is unreachable, so pins cannot be read;
  * no replica is usable.
- Reads of every other app (authn's refresh tokens and their revocations,
  admin sessions, the admin log): the primary. They are
  security state that other callers must see at once (a revoked token, a new
  session), and small.

A replica is usable when it answers and replicates with a lag of at most
``DATABASE_REPLICA_MAX_LAG_SECONDS`` (``SHOW REPLICA STATUS``: both threads
running, ``Seconds_Behind_Master`` / ``_Source`` within the bound). A monitor
thread per replica in each process asks every
``DATABASE_REPLICA_CHECK_SECONDS`` on its own connection, so a request never
waits on a replica known to be down, lagging or silent: the hot path reads the
last verdict (one comparison of clocks) and, like every query, pays Django's
own connection check once per request (``CONN_HEALTH_CHECKS``). When that
check fails (a replica that was killed, refuses connections, or, with a silent
one, after ``DATABASE_REPLICA_CONNECT_TIMEOUT``/``DATABASE_READ_TIMEOUT``),
the read goes to the primary and the replica is out until the monitor finds
it well. A process's first read takes the first look itself, so it does not
go to the primary for want of a verdict. Each change of verdict is logged once.

The window: a reader who did not write sees a write at most
``MAX_LAG + 2 * CHECK + 1`` seconds late (lag is counted in whole seconds and
grows by at most a second per second, and a verdict is used only while the
lag it found plus its age stays within ``MAX_LAG + 2 * CHECK``), and the
settings require ``PIN_SECONDS`` to be at least that, so a writer's pin
outlasts the time a usable replica can miss their write.
``Seconds_Behind_Master`` only measures what the replica has received: a
replica whose connection to the primary is slow but alive can be further
behind than it reports. A replica that dies between the check and a
query of the same request fails that request with 503; the next one reads the
primary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model

from arcana.core.cache import breaker
from arcana.core.context import acting_user, request_id
from arcana.core.reads import primary_required

logger = logging.getLogger("arcana.db.replicas")

# The apps whose reads may be a moment stale. Users' records also pass the
# user cache's tombstones (users.repository), which send a read of a record
# written within the pin window to the primary.
REPLICA_APPS = frozenset({"users"})
PIN_KEY = "db-pin:{}"


# --- read-your-writes -------------------------------------------------------------


@dataclass
class _Call:
    """What the router knows about the call running in this context."""

    request: str | None
    actor: str | None
    wrote: bool = False
    pinned: bool | None = None  # None: not looked up yet


# A context variable, not a thread local: under ASGI one thread runs the sync
# code of many requests.
_call: ContextVar[_Call | None] = ContextVar("arcana_db_call", default=None)


def _current_call() -> _Call:
    request, actor = request_id.get(), acting_user.get()
    call = _call.get()
    if call is None or call.request != request:
        call = _Call(request=request, actor=actor)
        _call.set(call)
    elif call.actor != actor:  # authentication named the caller mid-call
        call.actor, call.pinned = actor, None
    return call


def _pin_key(call: _Call) -> str | None:
    if call.actor:
        return PIN_KEY.format(f"user:{call.actor}")
    if call.request:
        return PIN_KEY.format(f"request:{call.request}")
    return None  # outside a call: a command, whose reads all go to the primary


def _pinned(call: _Call) -> bool:
    if call.pinned is None:
        key = _pin_key(call)
        # An unreachable cache hides the pins: the primary is the safe answer.
        call.pinned = breaker.is_down or (key is not None and cache.get(key) is not None)
    return call.pinned


def _call_started(**_: Any) -> None:
    _call.set(None)


def _call_finished(**_: Any) -> None:
    """A call that wrote pins its writer to the primary, from now (after its
    commits) for ``DATABASE_REPLICA_PIN_SECONDS``."""
    call = _call.get()
    _call.set(None)
    if call is None or not call.wrote:
        return
    key = _pin_key(call)
    if key is not None:
        cache.set(key, True, timeout=settings.DATABASE_REPLICA_PIN_SECONDS)


# REST (Django's handler), public gRPC (ErrorInterceptor) and internal calls
# (tierserver) all send these around each call, on the call's thread.
request_started.connect(_call_started, dispatch_uid="arcana.db.routers.started")
request_finished.connect(_call_finished, dispatch_uid="arcana.db.routers.finished")


# --- replica health ---------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    usable: bool
    reason: str
    lag: int = 0  # seconds behind the primary, when usable


def replication_verdict(status: dict[str, Any] | None, max_lag: int) -> Verdict:
    """Whether a replica whose ``SHOW REPLICA STATUS`` row is ``status`` (None:
    no row, not a replica) may serve reads. MariaDB names the columns
    ``Slave_*`` / ``Seconds_Behind_Master``, MySQL 8 ``Replica_*`` /
    ``Seconds_Behind_Source``."""
    if status is None:
        return Verdict(False, "not replicating (no replica status)")

    def column(*names: str) -> Any:
        return next((status[name] for name in names if name in status), None)

    io = column("Slave_IO_Running", "Replica_IO_Running")
    sql = column("Slave_SQL_Running", "Replica_SQL_Running")
    if io != "Yes" or sql != "Yes":
        return Verdict(False, f"not replicating (IO thread {io}, SQL thread {sql})")
    lag = column("Seconds_Behind_Master", "Seconds_Behind_Source")
    if lag is None:
        return Verdict(False, "replication lag unknown")
    if int(lag) > max_lag:
        return Verdict(False, f"{lag} s behind the primary (at most {max_lag} s allowed)")
    return Verdict(True, f"{lag} s behind the primary", lag=int(lag))


class _Replica:
    """One replica's state in this process, shared by its threads."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.usable = False  # until it has been looked at
        self.lag = 0
        self.checked_at = float("-inf")
        self.reason = "not checked yet"


def _replica_status(alias: str) -> dict[str, Any] | None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SHOW REPLICA STATUS")
        row = cursor.fetchone()
        if row is None:
            return None
        return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def probe(alias: str) -> Verdict:
    """Whether the replica ``alias`` may serve reads now, asked on this thread's connection."""
    connection = connections[alias]
    try:
        if connection.vendor != "mysql":
            connection.ensure_connection()
            return Verdict(True, f"{connection.vendor}: lag not measured")
        status = _replica_status(alias)
    except DatabaseError as exc:
        # Unreachable, or no right to read the status (MariaDB: grant SLAVE
        # MONITOR; MySQL: REPLICATION CLIENT).
        with contextlib.suppress(DatabaseError):
            connection.close()
        return Verdict(False, f"unreachable or status unreadable ({exc})")
    return replication_verdict(status, settings.DATABASE_REPLICA_MAX_LAG_SECONDS)


class ReplicaRouter:
    """``DATABASE_ROUTERS`` entry; see the module docstring."""

    def __init__(self, replicas: Sequence[str] | None = None) -> None:
        if replicas is None:
            replicas = [alias for alias in settings.DATABASES if alias != DEFAULT_DB_ALIAS]
        self.replicas = [_Replica(alias) for alias in replicas]
        self.aliases = frozenset({DEFAULT_DB_ALIAS, *replicas})
        self._monitor_pid: int | None = None
        self._monitor_lock = threading.Lock()

    # --- Django's router interface ---

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return str(instance._state.db)  # related rows from where the instance came
        if model._meta.app_label not in REPLICA_APPS or primary_required():
            return DEFAULT_DB_ALIAS
        in_transaction = self._transaction_alias()
        if in_transaction is not None:  # a transaction reads where it runs
            return in_transaction
        call = _current_call()
        if call.request is None or call.wrote:
            return DEFAULT_DB_ALIAS
        candidates = self._usable()
        if not candidates or _pinned(call):
            return DEFAULT_DB_ALIAS
        for replica in candidates:
            if self._connected(replica):
                return replica.alias
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        if model._meta.app_label in REPLICA_APPS:  # what a replica could serve stale
            _current_call().wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        # Every alias holds the same data.
        if obj1._state.db in self.aliases and obj2._state.db in self.aliases:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS

    def _transaction_alias(self) -> str | None:
        """The database whose transaction is open, if one is."""
        for alias in (DEFAULT_DB_ALIAS, *(replica.alias for replica in self.replicas)):
            if connections[alias].in_atomic_block:
                return alias
        return None

    # --- health: the hot path reads verdicts, a monitor thread makes them ---

    def _usable(self) -> list[_Replica]:
        self._ensure_monitor()
        return self.fresh_and_usable(time.monotonic())

    def fresh_and_usable(self, now: float) -> list[_Replica]:
        """Replicas whose last verdict is good and still says enough, in a
        random order (spreads the reads). A replica found ``lag`` seconds
        behind ``age`` seconds ago may be ``lag + age`` behind now (plus a
        second: lag is counted in whole seconds); it is used while that stays
        within ``MAX_LAG + 2 * CHECK``, so a monitor that is late (a busy host)
        or stuck (on a silent server) cannot stretch the window."""
        bound = (
            settings.DATABASE_REPLICA_MAX_LAG_SECONDS + 2 * settings.DATABASE_REPLICA_CHECK_SECONDS
        )
        found = [r for r in self.replicas if r.usable and r.lag + now - r.checked_at <= bound]
        if len(found) > 1:
            random.shuffle(found)
        return found

    def _connected(self, replica: _Replica) -> bool:
        """Whether this thread's connection to ``replica`` works, checked where
        Django checks it anyway (``CONN_HEALTH_CHECKS``: once per request, before
        its first query). A failure takes the replica out until the monitor
        finds it well again."""
        connection = connections[replica.alias]
        try:
            connection.close_if_health_check_failed()
            connection.ensure_connection()
        except DatabaseError as exc:
            self.record(replica, Verdict(False, f"unreachable ({exc})"), time.monotonic())
            return False
        return True

    def _ensure_monitor(self) -> None:
        """One monitor thread per replica in each process (a forked worker
        starts its own: threads do not survive a fork). The first look is
        taken at once, by the first read of the process, so that it does not
        go to the primary for want of a verdict."""
        pid = os.getpid()
        if self._monitor_pid == pid:
            return
        with self._monitor_lock:
            if self._monitor_pid == pid:
                return
            for replica in self.replicas:
                self.record(replica, probe(replica.alias), time.monotonic())
                threading.Thread(
                    target=self._monitor,
                    args=(replica,),
                    name=f"replica-monitor-{replica.alias}",
                    daemon=True,
                ).start()
            self._monitor_pid = pid

    def _monitor(self, replica: _Replica) -> None:
        while True:
            started = time.monotonic()
            self.record(replica, probe(replica.alias), time.monotonic())
            pause = settings.DATABASE_REPLICA_CHECK_SECONDS - (time.monotonic() - started)
            time.sleep(max(pause, 0.05))

    def record(self, replica: _Replica, verdict: Verdict, now: float) -> None:
        """Store a verdict; log a change of it once."""
        was_usable = replica.usable
        replica.usable, replica.reason, replica.lag = verdict.usable, verdict.reason, verdict.lag
        replica.checked_at = now
        if verdict.usable and not was_usable:
            logger.warning("replica %s in use: %s", replica.alias, verdict.reason)
        elif was_usable and not verdict.usable:
            logger.warning(
                "replica %s not used: %s; its reads go to the primary",
                replica.alias,
                verdict.reason,
            )
