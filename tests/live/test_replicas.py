"""Read replicas, live: the REST server (2 workers) and grpcrunserver (2 processes) on
a private MariaDB primary with a replica that follows it by binlog (GTID)
replication (``tests.support.replication``: two ``mariadbd`` of the test's own, on
side ports, removed afterwards), with ``DATABASE_REPLICA_URLS`` set.

Where a read went is seen in its answer: a user row written on the replica
alone (the *marker*) is found by a search that reads the replica, and never by
one that reads the primary. A user created or renamed through the API is on
the primary at once and on the replica once replication applies it. A replica
lags for real when a transaction on it holds a row that replication must
change: both replication threads keep running, the lag grows by the second,
and reads (which take no lock) go on.

The windows are short here so that the test is (``PIN_SECONDS`` = 3, lag
allowed 1 s, checked every 0.5 s); every
wait is a wait-until with a deadline, and the time it took is printed with the
other figures.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest

from protos.arcana.v1 import users_pb2
from tests.factories import DEFAULT_PASSWORD
from tests.live.conftest import UNTHROTTLED, checked_stack
from tests.support.clients import Grpc, bearer
from tests.support.proxy import TcpProxy
from tests.support.replication import ReplicatedPair, connect, replicated_pair
from tests.support.servers import free_port
from tests.support.stack import LiveStack, database_name

pytestmark = pytest.mark.live

PIN_SECONDS = 3
MAX_LAG_SECONDS = 1
CHECK_SECONDS = 0.5
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 2
SERVER_PROCESSES = 4  # 2 REST workers, 2 grpcrunserver processes
# A replica's longest miss: what a reader who did not write may wait for a write.
WINDOW = MAX_LAG_SECONDS + 2 * CHECK_SECONDS + 1
REPLICA_SETTINGS = {
    **UNTHROTTLED,
    "DATABASE_REPLICA_PIN_SECONDS": str(PIN_SECONDS),
    "DATABASE_REPLICA_MAX_LAG_SECONDS": str(MAX_LAG_SECONDS),
    "DATABASE_REPLICA_CHECK_SECONDS": str(CHECK_SECONDS),
    "DATABASE_REPLICA_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    "DATABASE_READ_TIMEOUT": str(READ_TIMEOUT),
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedPair]:
    with replicated_pair(tmp_path_factory.mktemp("mariadb")) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(pair: ReplicatedPair) -> Iterator[TcpProxy]:
    """The servers reach the replica through this, so that a test can cut it off."""
    with TcpProxy(("127.0.0.1", pair.replica.port), port=free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def stack(
    pair: ReplicatedPair, proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    with checked_stack(
        pair.primary.url("arcana"),
        tmp_path_factory.mktemp("replica-logs"),
        replica_urls=[f"mysql://root@127.0.0.1:{proxy.port}/arcana"],
        env_overrides=REPLICA_SETTINGS,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LiveStack) -> Iterator[Grpc]:
    stubs = Grpc(stack)
    yield stubs
    stubs.close()


@pytest.fixture(scope="module")
def reader(stack: LiveStack) -> str:
    """The access token of a second admin, who writes nothing as themself."""
    email = f"reader-{secrets.token_hex(3)}@live.example.com"
    status, body = stack.rest_json(
        "POST",
        "/api/v1/users",
        {"name": "Reading Admin", "email": email, "password": DEFAULT_PASSWORD, "roles": ["admin"]},
        token=stack.admin_token,
    )
    assert status == 201, body
    status, body = stack.rest_json(
        "POST", "/api/v1/auth/login", {"email": email, "password": DEFAULT_PASSWORD}
    )
    assert status == 200, body
    return str(body["access"])


@pytest.fixture(scope="module")
def marker(stack: LiveStack, pair: ReplicatedPair) -> str:
    """A search term that matches one user, who exists on the replica only."""
    pair.wait_caught_up()
    database = database_name(stack.database_url)
    term = f"replica-only-{secrets.token_hex(4)}"
    row = pair.replica.sql(
        f"SELECT * FROM `{database}`.users_user WHERE id = %s",  # noqa: S608  (our own name)
        [stack.admin_id],
    )[0]
    row.update(id=str(uuid.uuid4()), email=f"{term}@live.example.com", name=term, is_superuser=0)
    columns = ", ".join(f"`{name}`" for name in row)
    pair.replica.sql(
        f"INSERT INTO `{database}`.users_user ({columns}) "  # noqa: S608  (our own names)
        f"VALUES ({', '.join(['%s'] * len(row))})",
        list(row.values()),
    )
    on_primary = pair.primary.sql(
        f"SELECT COUNT(*) AS n FROM `{database}`.users_user WHERE email LIKE %s",  # noqa: S608
        [f"{term}%"],
    )
    assert on_primary == [{"n": 0}]
    return term


@dataclass(frozen=True)
class Scene:
    """Everything a test here works with."""

    stack: LiveStack
    pair: ReplicatedPair
    proxy: TcpProxy
    client: Grpc
    reader: str  # the token of an admin who writes nothing as themself
    marker: str  # finds one user, on the replica only

    def parts(self) -> tuple[LiveStack, ReplicatedPair, Grpc, str, str]:
        return self.stack, self.pair, self.client, self.reader, self.marker


@pytest.fixture(scope="module")
def scene(
    stack: LiveStack,
    pair: ReplicatedPair,
    proxy: TcpProxy,
    client: Grpc,
    reader: str,
    marker: str,
) -> Scene:
    return Scene(stack, pair, proxy, client, reader, marker)


# --- helpers ------------------------------------------------------------------------


def rest_total(stack: LiveStack, token: str, term: str) -> int:
    status, body = stack.rest_json("GET", f"/api/v1/users?search={term}&size=100", token=token)
    assert status == 200, body
    return int(body["total"])


def grpc_total(client: Grpc, token: str, term: str) -> int:
    reply = client.users.ListUsers(
        users_pb2.ListUsersRequest(search=term, size=100), metadata=bearer(token), timeout=30
    )
    return int(reply.total)


def create_user(stack: LiveStack, token: str) -> str:
    """A new user, created by the holder of ``token``; returns the search term
    that finds them."""
    term = f"made-{secrets.token_hex(4)}"
    status, body = stack.rest_json(
        "POST",
        "/api/v1/users",
        {"name": term, "email": f"{term}@live.example.com", "password": DEFAULT_PASSWORD},
        token=token,
    )
    assert status == 201, body
    return term


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout:.1f} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def reads_replica(stack: LiveStack, token: str, marker: str, client: Grpc | None = None) -> bool:
    """Whether the next read of ``token``'s holder went to the replica."""
    if client is not None:
        return grpc_total(client, token, marker) == 1
    return rest_total(stack, token, marker) == 1


def every_process_reads_replica(stack: LiveStack, client: Grpc, token: str, marker: str) -> bool:
    """A few reads over both protocols (so every worker serves some), all from the replica."""
    return all(reads_replica(stack, token, marker, over) for over in (None, client) * 4)


def every_process_reads_primary(
    stack: LiveStack, client: Grpc, token: str, marker: str, made: str
) -> bool:
    """A few reads over both protocols (so every worker serves some), all from
    the primary: none finds the marker, each finds ``made`` (a user the replica
    does not have yet)."""
    return all(
        not reads_replica(stack, token, marker, over)
        and (grpc_total(over, token, made) if over else rest_total(stack, token, made)) == 1
        for over in (None, client) * 4
    )


def all_on_replica(scene: Scene) -> str:
    """Waits until every process reads the replica again; how long that took."""
    seconds = wait_until(
        lambda: every_process_reads_replica(scene.stack, scene.client, scene.reader, scene.marker),
        10,
        "every process reading the replica",
    )
    return f"{seconds:.2f} s"


# --- tests --------------------------------------------------------------------------


def test_reads_go_to_the_replica_and_a_writers_reads_to_the_primary(
    scene: Scene, figures: dict[str, str]
) -> None:
    stack, _pair, client, reader, marker = scene.parts()
    writer = stack.admin_token  # pinned since it created the reader: wait that out
    wait_until(
        lambda: every_process_reads_replica(stack, client, writer, marker),
        PIN_SECONDS + 5,
        "the writer's reads back on the replica",
    )
    assert every_process_reads_replica(stack, client, reader, marker)

    made = create_user(stack, writer)
    # Right after the write, the writer reads the primary, over REST (another
    # REST worker, most likely) and over gRPC (another process): the pin is
    # in Redis, not in the process that wrote.
    assert (rest_total(stack, writer, made), rest_total(stack, writer, marker)) == (1, 0)
    assert (grpc_total(client, writer, made), grpc_total(client, writer, marker)) == (1, 0)
    # Someone else still reads the replica.
    assert reads_replica(stack, reader, marker)
    assert reads_replica(stack, reader, marker, client)

    seconds = wait_until(
        lambda: reads_replica(stack, writer, marker),
        PIN_SECONDS + 5,
        "the writer's pin to expire",
    )
    figures["writer back on the replica after their write"] = f"{seconds:.2f} s"
    assert rest_total(stack, writer, made) == 1  # from the replica, which has it by now


def test_a_lagging_replica_serves_neither_the_writer_nor_for_long_anyone(
    scene: Scene, figures: dict[str, str]
) -> None:
    stack, pair, client, reader, marker = scene.parts()
    writer = stack.admin_token
    victim = create_user(stack, writer)
    status, body = stack.rest_json("GET", f"/api/v1/users?search={victim}", token=writer)
    assert status == 200, body
    victim_id = body["data"][0]["id"]
    pair.wait_caught_up()
    wait_until(lambda: reads_replica(stack, reader, marker), PIN_SECONDS + 5, "the replica in use")
    renamed = f"renamed-{secrets.token_hex(4)}"
    database = database_name(stack.database_url)
    # A transaction on the replica holds the victim's row: replication stalls
    # on the change below (both threads running, the lag growing by the
    # second) while reads, which take no lock, go on.
    holder = connect(pair.replica.port)
    try:
        holder.cursor().execute("BEGIN")
        holder.cursor().execute(
            f"SELECT id FROM `{database}`.users_user WHERE id = %s FOR UPDATE",  # noqa: S608
            [victim_id],
        )
        status, body = stack.rest_json(
            "PATCH", f"/api/v1/users/{victim_id}", {"name": renamed}, token=writer
        )
        assert status == 200, body
        # The writer reads their change at once, over both protocols (the pin).
        assert rest_total(stack, writer, renamed) == 1
        assert grpc_total(client, writer, renamed) == 1
        # The reader may read the replica until its lag shows (the documented
        # window), then the primary; never half of each.
        seen = (rest_total(stack, reader, renamed), rest_total(stack, reader, marker))
        assert seen in ((0, 1), (1, 0))
        # Each process decides on its own monitor's verdict: all of them
        # leave the replica within the window.
        seconds = wait_until(
            lambda: every_process_reads_primary(stack, client, reader, marker, renamed),
            WINDOW + 5,
            "the lagging replica avoided",
        )
        figures["a lagging replica avoided after the write"] = (
            f"{seconds:.2f} s (window {WINDOW} s; stale read seen first: {seen == (0, 1)})"
        )
        assert pair.replication_status()["Slave_SQL_Running"] == "Yes"  # lagging, not stopped
    finally:
        holder.rollback()
        holder.close()
    pair.wait_caught_up()
    figures["a caught-up replica in use again"] = all_on_replica(scene)
    assert rest_total(stack, reader, renamed) == 1  # from the replica, which has it now


def test_a_replica_that_stopped_applying_is_avoided(scene: Scene, figures: dict[str, str]) -> None:
    stack, pair, client, reader, marker = scene.parts()
    writer = stack.admin_token
    wait_until(lambda: reads_replica(stack, reader, marker), PIN_SECONDS + 5, "the replica in use")
    pair.replica.sql("STOP REPLICA SQL_THREAD")
    try:
        made = create_user(stack, writer)
        assert rest_total(stack, writer, made) == 1
        assert grpc_total(client, writer, made) == 1
        # Each process decides on its own monitor's verdict: wait for all of
        # them, not for the first one that noticed.
        seconds = wait_until(
            lambda: every_process_reads_primary(stack, client, reader, marker, made),
            WINDOW + 5,
            "the stopped replica avoided",
        )
        figures["a replica with its SQL thread stopped avoided"] = f"{seconds:.2f} s"
        assert rest_total(stack, reader, marker) == 0
        assert grpc_total(client, reader, marker) == 0
    finally:
        pair.replica.sql("START REPLICA SQL_THREAD")
    pair.wait_caught_up()
    wait_until(lambda: reads_replica(stack, reader, marker), 10, "the replica back in use")


def test_a_dead_replica_sends_reads_to_the_primary_at_once(
    scene: Scene, figures: dict[str, str]
) -> None:
    stack, pair, client, reader, marker = scene.parts()
    # Every process holds a connection to the replica when it dies.
    all_on_replica(scene)
    pair.replica.kill()
    latencies = []
    try:
        for over in (None, client) * 8:
            started = time.monotonic()
            try:
                total = (
                    grpc_total(over, reader, marker) if over else rest_total(stack, reader, marker)
                )
            except grpc.RpcError as exc:
                pytest.fail(f"a read failed with the replica down: {exc.code()} {exc.details()}")
            latencies.append(time.monotonic() - started)
            assert total == 0  # the primary's answer
    except BaseException:
        pair.replica.start()  # for the tests after this one
        raise
    figures["reads with the replica killed"] = (
        f"max {max(latencies) * 1000:.0f} ms, median {sorted(latencies)[8] * 1000:.0f} ms"
    )
    # Not held for a connect or read timeout: a refused or reset connection is
    # noticed at once.
    assert max(latencies) < CONNECT_TIMEOUT + 1, latencies
    made = create_user(stack, stack.admin_token)
    assert rest_total(stack, reader, made) == 1
    logs = stack.rest.log_text() + stack.grpc.log_text()
    assert "replica replica1 not used: unreachable" in logs

    pair.replica.start()
    pair.wait_caught_up()
    figures["a restarted replica in use again"] = all_on_replica(scene)
    assert "replica replica1 in use: 0 s behind" in stack.rest.log_text() + stack.grpc.log_text()


def test_a_silent_replica_costs_one_wait_per_process_then_none(
    scene: Scene, figures: dict[str, str]
) -> None:
    stack, _pair, client, reader, marker = scene.parts()
    all_on_replica(scene)
    scene.proxy.cut("blackhole")  # a partition: connections stay open, nothing answers
    latencies = []
    try:
        for over in (None, client) * 8:
            began = time.monotonic()
            total = grpc_total(over, reader, marker) if over else rest_total(stack, reader, marker)
            latencies.append(time.monotonic() - began)
            assert total == 0  # the primary's answer, never an error
    finally:
        scene.proxy.restore()
    slow = [seconds for seconds in latencies if seconds > 0.5]
    figures["reads with the replica silent"] = (
        f"{len(slow)} of {len(latencies)} waited (max {max(latencies):.2f} s), "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms"
    )
    # A process's first read waits out its connection's timeouts; by then the
    # replica is out for the whole process (its monitor, in the background,
    # finds it silent too), and no later read waits.
    assert len(slow) <= SERVER_PROCESSES, latencies
    assert max(latencies) < 3 * READ_TIMEOUT + CONNECT_TIMEOUT + 1, latencies
    figures["a replica back in use after a partition"] = all_on_replica(scene)
