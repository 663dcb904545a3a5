"""The deployed servers under database and cache outages (tests/faults/stack.py).

Each outage is a cut of the proxy between the servers and MariaDB or Redis;
the same server processes must answer correctly while it lasts and serve
normally once it ends, without a restart.
"""

import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arcana.core.cache import RETRY_SECONDS
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from tests.faults.stack import (
    DB_TIMEOUT,
    HEALTH_INTERVAL,
    PASSWORD,
    THROTTLE_LOGIN_RATE,
    WORKERS,
    Reply,
    Stack,
    pid_of,
)
from tests.support.proxy import CutMode
from tests.support.waiting import wait_for

pytestmark = pytest.mark.live

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REDIS_TIMEOUT = 0.5  # REDIS_CONNECT_TIMEOUT / REDIS_TIMEOUT as deployed
SERVER_PROCESSES = 2 * WORKERS  # REST workers + grpcrunserver workers

_addresses = iter(range(1, 1_000_000))


def fresh_address() -> str:
    """A client address of its own, so earlier requests do not throttle this one."""
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


@pytest.fixture(autouse=True)
def healed(stack: Stack) -> Iterator[None]:
    """Every test starts and ends with both links up and the service ready, so
    one failing test does not leave the next one in an outage."""
    yield
    stack.db_proxy.restore()
    stack.redis_proxy.restore()
    wait_for(lambda: all_caught_up(stack), timeout=RETRY_SECONDS + 10, interval=0.3)


def all_caught_up(stack: Stack) -> bool:
    """Ready, and every process that logged a cache outage has logged its end
    (a process only notices when it next uses the cache: drive them all)."""
    for _ in range(2 * WORKERS):
        stack.rpc(grpc_calls(stack)["Me"])
    if readyz(stack) != (200, "ok"):
        return False
    down = stack.log_lines("cache unreachable")
    up = stack.log_lines("cache reachable again")
    return all(
        sorted(pid_of(line) for line in down[server]) == sorted(pid_of(line) for line in up[server])
        for server in down
    )


# --- helpers ----------------------------------------------------------------------------


def readyz(stack: Stack) -> tuple[int, str]:
    reply = stack.http("GET", "/readyz", timeout=10)
    return reply.status, reply.json()["checks"]["cache"]


def assert_unavailable(reply: Reply) -> None:
    """The contract's 503: JSON, {"error", "code"}, no traceback, no HTML."""
    assert reply.status == 503, reply.raw[:300]
    assert reply.content_type.startswith("application/json"), reply.content_type
    body = reply.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == "service_unavailable"
    assert b"Traceback" not in reply.raw


def metadata(stack: Stack) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {stack.admin_token}"),)


def grpc_calls(stack: Stack) -> dict[str, Callable[[grpc.Channel], Any]]:
    """One call per operation the outage tests care about, each with a deadline."""
    md = metadata(stack)
    return {
        "ListUsers": lambda ch: users_pb2_grpc.UserServiceStub(ch).ListUsers(
            users_pb2.ListUsersRequest(page=0, size=10), metadata=md, timeout=30
        ),
        "GetUser": lambda ch: users_pb2_grpc.UserServiceStub(ch).GetUser(
            users_pb2.GetUserRequest(id=stack.admin_id), metadata=md, timeout=30
        ),
        "Me": lambda ch: auth_pb2_grpc.AuthServiceStub(ch).Me(
            auth_pb2.MeRequest(), metadata=md, timeout=30
        ),
        "Login": lambda ch: auth_pb2_grpc.AuthServiceStub(ch).Login(
            auth_pb2.LoginRequest(email=stack.admin_email, password=PASSWORD), timeout=30
        ),
    }


def rest_calls(stack: Stack) -> dict[str, Callable[[], Reply]]:
    token = stack.admin_token
    one_user = f"/api/v1/users/{stack.admin_id}"
    return {
        "GET /users": lambda: stack.http("GET", "/api/v1/users?page=0&size=10", token=token),
        "GET /users/{id}": lambda: stack.http("GET", one_user, token=token),
        "GET /auth/me": lambda: stack.http("GET", "/api/v1/auth/me", token=token),
        "POST /auth/login": lambda: stack.login(client_address=fresh_address()),
    }


def health_status(stack: Stack) -> int:
    with grpc.insecure_channel(stack.grpc_address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return int(reply.status)


def health_is(stack: Stack, wanted: int) -> Callable[[], bool]:
    # Fresh channels land on either gRPC process; both have to agree.
    return lambda: all(health_status(stack) == wanted for _ in range(2 * WORKERS))


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """All at once: a stuck call then costs the test its own duration, once."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def served_everything(stack: Stack) -> bool:
    rest_ok = all(call().status == 200 for call in rest_calls(stack).values())
    rpc_ok = all(stack.rpc(call)[0] == grpc.StatusCode.OK for call in grpc_calls(stack).values())
    return rest_ok and rpc_ok and readyz(stack)[0] == 200


def assert_no_server_errors(stack: Stack) -> None:
    rest = stack.rest.log_text()
    grpc_log = stack.grpc.log_text()
    assert '" 500 ' not in rest  # the access log's status column
    assert "Traceback" not in rest
    assert "WORKER TIMEOUT" not in rest
    assert "unexpected error serving a gRPC call" not in grpc_log
    assert "Traceback" not in grpc_log
    assert PASSWORD not in rest + grpc_log
    assert stack.admin_token not in rest + grpc_log


# --- database -----------------------------------------------------------------------------


# Refused and reset connections fail at once; a blackholed database is noticed
# only through the timeouts: on a persistent connection at worst a ping or a
# query and then the reconnect (measured: 2 or 3 timeouts per request).
# Point reads of one user are cache-aside (users/repository.py): while Redis
# holds the record they are served without the database, which is the point.
CACHED_READS = {"GET /users/{id}", "GET /auth/me", "gRPC GetUser", "gRPC Me"}
LATENCY_BOUND = {"refuse": 1.0, "reset": 1.0, "blackhole": 3 * DB_TIMEOUT + 1.5}


@pytest.mark.parametrize("mode", ["refuse", "reset", "blackhole"])
def test_database_cut_is_503_and_unavailable_then_the_same_processes_recover(
    stack: Stack, mode: CutMode, figures: dict[str, str]
) -> None:
    pids = stack.all_pids()
    assert served_everything(stack)
    stack.db_proxy.cut(mode)

    rest = rest_calls(stack)
    rpcs = grpc_calls(stack)
    names = [*rest, *rest, *(f"gRPC {name}" for name in rpcs)]
    jobs: list[Callable[[], Any]] = [*rest.values(), *rest.values()]
    jobs += [functools.partial(stack.rpc, call) for call in rpcs.values()]
    started = time.monotonic()
    results = in_parallel(jobs)
    wall = time.monotonic() - started

    latencies = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, Reply):
            if name in CACHED_READS and result.status == 200:
                latencies[name] = result.seconds
                continue
            assert_unavailable(result)
            latencies[name] = max(latencies.get(name, 0.0), result.seconds)
        else:
            code, seconds = result
            if name in CACHED_READS and code == grpc.StatusCode.OK:
                latencies[name] = seconds
                continue
            assert code == grpc.StatusCode.UNAVAILABLE, (name, code)
            latencies[name] = seconds
    assert max(latencies.values()) < LATENCY_BOUND[mode], latencies

    probe = stack.http("GET", "/readyz", timeout=30)
    assert probe.status == 503
    assert probe.json()["checks"] == {"database": "unavailable", "cache": "ok"}
    assert probe.seconds < LATENCY_BOUND[mode]
    to_not_serving = wait_for(
        health_is(stack, NOT_SERVING), timeout=HEALTH_INTERVAL + LATENCY_BOUND[mode] + 3
    )

    stack.db_proxy.restore()
    recovered = wait_for(lambda: served_everything(stack), timeout=2 * DB_TIMEOUT + 3)
    to_serving = recovered + wait_for(health_is(stack, SERVING), timeout=HEALTH_INTERVAL + 3)
    # Every thread of every process, not just the first to be asked.
    replies = in_parallel([rest["GET /users"]] * 12)
    assert [reply.status for reply in replies] == [200] * 12
    assert stack.all_pids() == pids  # recovered in place: nothing restarted
    assert_no_server_errors(stack)

    figures[f"database cut ({mode})"] = (
        f"slowest call {max(latencies.values()):.3f}s (all {len(jobs)} in {wall:.2f}s), "
        f"gRPC health NOT_SERVING after {to_not_serving:.2f}s; restored: serving after "
        f"{recovered:.2f}s, health SERVING after {to_serving:.2f}s"
    )


def test_database_and_cache_both_cut_is_still_503_not_500(
    stack: Stack, figures: dict[str, str]
) -> None:
    """With the cache gone too, authentication itself needs the database."""
    stack.redis_proxy.cut("refuse")
    stack.db_proxy.cut("refuse")
    rest = rest_calls(stack)
    for name, call in rest.items():
        reply = call()
        assert_unavailable(reply)
        assert reply.seconds < 1.0, name
    for name, rpc in grpc_calls(stack).items():
        code, seconds = stack.rpc(rpc)
        assert code == grpc.StatusCode.UNAVAILABLE, name
        assert seconds < 1.0, name
    probe = stack.http("GET", "/readyz")
    assert probe.status == 503
    assert probe.json()["checks"] == {"database": "unavailable", "cache": "degraded"}
    assert_no_server_errors(stack)


# --- Redis --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_redis_cut_keeps_serving_logs_once_and_still_throttles(
    stack: Stack, mode: CutMode, figures: dict[str, str]
) -> None:
    mark = stack.log_mark()
    pids = stack.all_pids()
    stack.redis_proxy.cut(mode)
    started = time.monotonic()
    stack.redis.delete(*stack.redis_keys()) if stack.redis_keys() else None

    read_latencies: list[float] = []
    for _ in range(6):
        for name, call in rest_calls(stack).items():
            reply = call()
            assert reply.status == 200, (name, reply.raw[:200])
            if "login" not in name:
                read_latencies.append(reply.seconds)
        for name, rpc in grpc_calls(stack).items():
            code, seconds = stack.rpc(rpc)
            assert code == grpc.StatusCode.OK, (name, code)
            if name != "Login":
                read_latencies.append(seconds)
        assert readyz(stack) == (200, "degraded")
    elapsed = time.monotonic() - started
    # Only a call that actually tries Redis waits for its timeout, and the
    # breaker lets one through per process every RETRY_SECONDS.
    slow = [s for s in read_latencies if s > REDIS_TIMEOUT * 0.8]
    assert len(slow) <= SERVER_PROCESSES * (elapsed / RETRY_SECONDS + 1), slow
    assert max(read_latencies) < REDIS_TIMEOUT * 2 + 0.5

    # Rate limits hold per process while Redis is away.
    address = fresh_address()
    burst = [stack.login(client_address=address) for _ in range(4 * THROTTLE_LOGIN_RATE)]
    statuses = [reply.status for reply in burst]
    assert set(statuses) <= {200, 429}, statuses
    throttled = [reply for reply in burst if reply.status == 429]
    assert throttled, statuses
    assert throttled[0].json()["code"] == "throttled"
    # At most one probe of Redis per process per retry window goes uncounted.
    assert statuses.count(200) <= WORKERS * (THROTTLE_LOGIN_RATE + 1), statuses

    outage_lines = stack.log_lines("cache unreachable", since=mark)
    for server, lines in outage_lines.items():
        per_pid = [pid_of(line) for line in lines]
        assert lines, f"{server}: the outage was not logged"
        assert len(per_pid) == len(set(per_pid)), f"{server} logged it more than once: {lines}"
    assert stack.redis_keys() == []  # nothing reached Redis behind the cut

    stack.redis_proxy.restore()
    restored = time.monotonic()
    outage_pids = {pid_of(line) for lines in outage_lines.values() for line in lines}

    def back_in_use() -> bool:
        for call in rest_calls(stack).values():
            call()
        for rpc in grpc_calls(stack).values():
            stack.rpc(rpc)
        recovered = stack.log_lines("cache reachable again", since=mark)
        recovered_pids = {pid_of(line) for lines in recovered.values() for line in lines}
        return bool(stack.redis_keys()) and outage_pids <= recovered_pids

    wait_for(back_in_use, timeout=RETRY_SECONDS + 8, interval=0.3)
    to_recover = time.monotonic() - restored
    assert readyz(stack) == (200, "ok")
    recovery_lines = stack.log_lines("cache reachable again", since=mark)
    for lines in recovery_lines.values():
        per_pid = [pid_of(line) for line in lines]
        assert len(per_pid) == len(set(per_pid)), lines
    assert stack.all_pids() == pids
    assert_no_server_errors(stack)

    figures[f"redis cut ({mode})"] = (
        f"{len(read_latencies)} reads: max {max(read_latencies):.3f}s, "
        f"{len(slow)} over {REDIS_TIMEOUT * 0.8:.1f}s; login burst of {len(statuses)}: "
        f"{statuses.count(200)} ok, {len(throttled)} throttled; 'cache unreachable' lines: "
        f"rest {len(outage_lines['rest'])}, grpc {len(outage_lines['grpc'])} "
        f"({SERVER_PROCESSES} processes); keys back and recovery logged by every such "
        f"process {to_recover:.2f}s after restore"
    )
