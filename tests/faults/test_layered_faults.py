"""Layered mode under tier failures, with load running from a second process
(tests/faults/loadgen.py: REST GET /users/{id} and gRPC GetUser in a loop,
every call's outcome and timing recorded).

``live_stack(mode="layered", service_replicas=2)`` on MariaDB + Redis, mutual
TLS between the tiers, as production runs them:

- SIGKILL one of the two service-tier replicas: reads keep succeeding; only
  calls in flight at the kill may fail (the controller retries those reads on
  the other replica, so none should). The replica comes back; then the other
  one dies, and reads still succeed: the first is in use again.
- SIGKILL the repository tier: the edge answers 503 / UNAVAILABLE within the
  internal deadline, ``/readyz`` and gRPC health say so; the repository tier
  restarts and everything recovers with the same edge processes.
"""

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.faults.edge import (
    DEADLINE,
    EDGE_PROCESSES,
    HEALTH_INTERVAL,
    NOT_SERVING,
    SERVING,
    UNAVAILABLE,
    Load,
    connected_pids,
    health,
    health_is,
    load,
    readyz,
    readyz_is,
    unavailable_between,
)
from tests.faults.loadgen import GRPC, REST, Call
from tests.live.conftest import UNTHROTTLED, live_database_url, live_redis_url, server_log_problems
from tests.support.servers import Server
from tests.support.stack import LiveStack, live_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.live

LOAD_AFTER_FAULT = 3.0  # seconds of load looked at after each fault


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(
        live_database_url(),
        live_redis_url(),
        mode="layered",
        service_replicas=2,
        rest_workers=EDGE_PROCESSES,
        grpc_workers=EDGE_PROCESSES,
        env_overrides={**UNTHROTTLED, "GRPC_HEALTH_INTERVAL": str(HEALTH_INTERVAL)},
        password=DEFAULT_PASSWORD,
        log_dir=tmp_path_factory.mktemp("layered-fault-logs"),
        database_prefix="arcana_faults",
        stop_grace=5,
    ) as running:
        yield running
        problems = server_log_problems(running)
    assert not problems, "server logs:\n" + "\n".join(problems[:20])


@pytest.fixture
def traffic(layered: LiveStack, tmp_path: Path) -> Iterator[Load]:
    with load(tmp_path / "calls.txt", layered) as running:
        yield running


def kill(server: Server) -> float:
    """SIGKILL the server's whole process group; the moment it was sent."""
    assert server.process is not None
    moment = time.monotonic()
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    return moment


def in_flight(calls: list[Call], moment: float) -> list[Call]:
    return [call for call in calls if call.started <= moment <= call.finished]


def logged_during(stack: LiveStack, calls: list[Call], margin: float = 0.2) -> list[str]:
    """The servers' warnings and internal-hop lines logged while ``calls`` ran
    (their times are monotonic, the logs' wall-clock): what a failed call met
    on its way, for the assertion's message."""
    offset = time.time() - time.monotonic()
    windows = [(c.started + offset - margin, c.finished + offset + margin) for c in calls]
    found = []
    for log in sorted(stack.log_dir.glob("*.log")):
        for text in log.read_text(errors="replace").splitlines():
            try:
                line = json.loads(text)
                moment = datetime.fromisoformat(line["timestamp"]).timestamp()
            except (ValueError, KeyError, TypeError):
                continue
            noted = line.get("level") != "info" or line.get("logger") == "arcana.internal"
            if noted and any(start <= moment <= end for start, end in windows):
                found.append(f"{log.name}: {text}")
    return found


def edge_pids(stack: LiveStack) -> set[int]:
    return set(stack.rest.pids()) | set(stack.grpc.pids())


def kill_a_replica(layered: LiveStack, traffic: Load, victim: int, edge: set[int]) -> str:
    """SIGKILL service replica ``victim`` under load, check the calls around
    it, restart it and wait until every edge process is connected to it again."""
    port = int(layered.service_addresses[victim].rpartition(":")[2])
    callers = connected_pids(port, edge)
    assert callers, "no edge process is connected to the replica"
    killed = kill(layered.tiers["service"][victim])
    wait_for(lambda: traffic.after(killed + LOAD_AFTER_FAULT) != [], timeout=30)
    calls = traffic.calls()
    after = [call for call in calls if call.finished >= killed]
    failures = [call for call in after if not call.ok]
    flying = in_flight(calls, killed)
    # The bound: at most the calls in flight at the kill fail.
    unexpected = [call for call in failures if call not in flying]
    assert not unexpected, (
        f"killed at {killed:.6f}; calls failed that were not in flight then: {unexpected}\n"
        + "\n".join(logged_during(layered, unexpected)[:40])
    )
    assert {call.kind for call in after if call.ok} == {REST, GRPC}

    layered.restart_tier("service", victim)
    wait_for(lambda: connected_pids(port, edge) == callers, timeout=30)
    wait_for(traffic.serving_since(time.monotonic()), timeout=30)
    return (
        f"replica {victim}: {len(failures)} of {len(after)} calls failed "
        f"({len(flying)} in flight at the kill)"
    )


def test_killing_one_of_two_service_replicas_keeps_reads_succeeding(
    layered: LiveStack, traffic: Load, figures: dict[str, str]
) -> None:
    pids = edge_pids(layered)
    # Replica 0 dies and comes back; then replica 1 dies, and the reads
    # succeed only if the edge is using replica 0 again.
    found = [kill_a_replica(layered, traffic, victim, pids) for victim in (0, 1)]
    assert edge_pids(layered) == pids
    figures["service replica SIGKILL under load"] = "; ".join(found)


@pytest.fixture
def listing(layered: LiveStack, tmp_path: Path) -> Iterator[Load]:
    """Traffic that needs the repository tier on every call: a page of users
    (a read of one cached user is answered from the shared cache, without it)."""
    with load(tmp_path / "calls.txt", layered, operation="list") as running:
        yield running


def test_killing_the_repository_tier_is_503_within_the_deadline_then_recovers(
    layered: LiveStack, listing: Load, figures: dict[str, str]
) -> None:
    traffic = listing
    pids = edge_pids(layered)
    assert readyz(layered.rest_port)[0] == 200
    killed = kill(layered.tiers["repository"][0])

    wait_for(traffic.failing_since(killed), timeout=30)
    # Meanwhile a user record the repository left in the shared cache is still
    # served (exact: no write can happen while the repository is down).
    cached = layered.rest_json(
        "GET", f"/api/v1/users/{layered.admin_id}", token=layered.admin_token
    )
    assert cached[0] == 200
    to_readyz = wait_for(readyz_is(layered.rest_port, 503, EDGE_PROCESSES), timeout=10)
    assert readyz(layered.rest_port) == (503, {"service": "unavailable", "cache": "ok"})
    to_not_serving = wait_for(
        health_is(layered.grpc_address, NOT_SERVING, EDGE_PROCESSES), timeout=10
    )
    # Both within a few health intervals (and the 1 s health probe) of the kill.
    assert to_readyz + to_not_serving < 10 * HEALTH_INTERVAL + 2, (to_readyz, to_not_serving)
    outage_end = time.monotonic()

    restarted = layered.restart_tier("repository")
    ready_at = time.monotonic()
    recovered = wait_for(traffic.serving_since(ready_at), timeout=30)
    to_ready = wait_for(readyz_is(layered.rest_port, 200, EDGE_PROCESSES), timeout=10)
    to_serving = wait_for(health_is(layered.grpc_address, SERVING, EDGE_PROCESSES), timeout=10)
    assert health(layered.grpc_address) == SERVING
    restarted.check_alive()

    # While the tier was down (after the calls in flight at the kill) every
    # call failed as the contract says, and within the deadline.
    calls = traffic.calls()
    during = unavailable_between(calls, killed, outage_end)
    slowest = max(call.seconds for call in during)
    flying = in_flight(calls, killed)
    assert all(
        call.ok or (call.status == UNAVAILABLE[call.kind] and call.seconds <= DEADLINE + 1)
        for call in flying
    ), flying
    assert edge_pids(layered) == pids  # recovered in place: the edge never restarted

    figures["repository SIGKILL under load"] = (
        f"{len(during)} calls while down, all 503/UNAVAILABLE, slowest {slowest * 1000:.0f} ms "
        f"(deadline {DEADLINE:.0f} s); /readyz 503 after {to_readyz:.2f}s, gRPC health "
        f"NOT_SERVING {to_not_serving:.2f}s later (interval {HEALTH_INTERVAL}s); restarted: "
        f"load served again {recovered:.2f}s after the tier was ready, /readyz 200 "
        f"+{to_ready:.2f}s, health SERVING +{to_serving:.2f}s"
    )
