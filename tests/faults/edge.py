"""What the layered fault tests need of the edge: load from a second process
(tests/faults/loadgen.py), and its probes (``/readyz``, gRPC health)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.faults.loadgen import GRPC, REST, Call, read_calls
from tests.support.servers import ROOT
from tests.support.waiting import wait_for

DEADLINE = 2.0  # ARCANA_INTERNAL_DEADLINE's default, which the fault stacks keep
# A failing call may take the deadline plus the edge's own work around it.
DEADLINE_MARGIN = 0.5
HEALTH_INTERVAL = 0.3  # GRPC_HEALTH_INTERVAL of the fault stacks
EDGE_PROCESSES = 2  # REST workers, and grpcrunserver workers

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The edge's answer when the tier behind it cannot be reached, per protocol.
UNAVAILABLE = {REST: "503", GRPC: "UNAVAILABLE"}


@dataclass
class Load:
    """A running tests/faults/loadgen.py and its record."""

    process: subprocess.Popen[bytes]
    record: Path

    def calls(self) -> list[Call]:
        return read_calls(self.record)

    def after(self, moment: float) -> list[Call]:
        """Calls that started at or after ``moment``."""
        return [call for call in self.calls() if call.started >= moment]

    def serving_since(self, moment: float, count: int = 3) -> Callable[[], bool]:
        """True once ``count`` calls of each kind started after ``moment``,
        and every one of the last ``count`` of each kind, succeeded."""

        def check() -> bool:
            self.check_alive()
            calls = self.after(moment)
            for kind in (REST, GRPC):
                last = [call for call in calls if call.kind == kind][-count:]
                if len(last) < count or not all(call.ok for call in last):
                    return False
            return True

        return check

    def failing_since(self, moment: float) -> Callable[[], bool]:
        """True once a call of each kind that started after ``moment`` failed."""

        def check() -> bool:
            self.check_alive()
            failed = {call.kind for call in self.after(moment) if not call.ok}
            return failed == {REST, GRPC}

        return check

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"the load generator exited ({self.process.returncode})")


class Edge(Protocol):
    """A stack's public ports and an admin's token (LiveStack has them)."""

    rest_port: int
    grpc_address: str
    admin_token: str
    admin_id: str
    admin_email: str


@contextmanager
def load(
    record: Path,
    edge: Edge,
    *,
    threads: int = 2,
    timeout: float = 30,
    operation: str = "get",
) -> Iterator[Load]:
    """``threads`` REST and ``threads`` gRPC callers of the admin's GetUser on
    ``edge`` (``operation="list"``: a one-user page searching the admin's
    email, which reaches the repository every time), in another process."""
    spec = {
        "operation": operation,
        "search": edge.admin_email,
        "rest_port": edge.rest_port,
        "grpc_address": edge.grpc_address,
        "token": edge.admin_token,
        "user_id": edge.admin_id,
        "rest_threads": threads,
        "grpc_threads": threads,
        "timeout": timeout,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.loadgen", json.dumps(spec), str(record)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    running = Load(process, record)
    try:
        wait_for(running.serving_since(0.0), timeout=30)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def unavailable_between(calls: list[Call], start: float, end: float) -> list[Call]:
    """The calls made entirely between ``start`` and ``end`` (an outage), each
    checked: 503 (REST) / UNAVAILABLE (gRPC), of both kinds, and none slower
    than the internal deadline allows."""
    during = [call for call in calls if start < call.started and call.finished < end]
    assert {call.kind for call in during} == {REST, GRPC}, "no load of each kind meanwhile"
    wrong = [call for call in during if call.status != UNAVAILABLE[call.kind]]
    assert not wrong, wrong[:10]
    slowest = max(call.seconds for call in during)
    assert slowest <= DEADLINE + DEADLINE_MARGIN, slowest
    return during


def readyz(port: int) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    return response.status, body["checks"]


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    return int(reply.status)


def health_is(address: str, wanted: int, processes: int) -> Callable[[], bool]:
    """Every gRPC worker process agrees (fresh channels land on any of them)."""
    return lambda: all(health(address) == wanted for _ in range(2 * processes))


def readyz_is(port: int, status: int, processes: int) -> Callable[[], bool]:
    """Every REST worker agrees."""
    return lambda: all(readyz(port)[0] == status for _ in range(2 * processes))


def connected_pids(port: int, among: set[int]) -> set[int]:
    """Which of the processes ``among`` hold an established TCP connection to
    ``port`` (from /proc: their sockets' inodes in /proc/net/tcp and tcp6,
    where gRPC's dual-stack sockets are)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{inode}]")
    holders = set()
    for pid in among:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    holders.add(pid)
                    break
            except OSError:
                continue
    return holders
