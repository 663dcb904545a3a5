"""Load from a second process: threads calling the public edge in a closed
loop, each call recorded as one line of its outcome and timing.

    python -m tests.faults.loadgen SPEC_JSON OUT_FILE

SPEC_JSON: ``{"rest_port", "grpc_address", "token", "user_id", "rest_threads",
"grpc_threads", "timeout"}`` and optionally ``"operation": "get" | "list"``
with ``"search"``. Every thread loops on one call (REST ``GET
/api/v1/users/{id}`` over a kept-alive connection, or gRPC ``GetUser`` on a
channel of its own; with ``list``, a one-user page of ``GET /api/v1/users``
/ ``ListUsers`` searching ``search``, which no cache answers) until
SIGTERM/SIGINT, and appends
``kind status started finished`` to OUT_FILE (``time.monotonic()``: one clock
for every process of the machine), flushed at once, so the test reads the
record while the load runs. ``status`` is the HTTP status, the gRPC code's
name, or ``error:<exception>`` when no answer came.

Only the standard library and grpc: nothing of Django is loaded here, so the
load costs the machine as little as a client would.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import grpc

from protos.arcana.v1 import users_pb2, users_pb2_grpc

REST = "rest"
GRPC = "grpc"
OK = {"200", "OK"}
# After a failure with no answer at all, so that a refused port is not spun on.
PAUSE_AFTER_ERROR = 0.02


@dataclass(frozen=True)
class Call:
    kind: str
    status: str
    started: float
    finished: float

    @property
    def ok(self) -> bool:
        return self.status in OK

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def parse(line: str) -> Call:
    kind, status, started, finished = line.split()
    return Call(kind, status, float(started), float(finished))


def read_calls(path: Path) -> list[Call]:
    """Every complete line written so far."""
    text = path.read_text() if path.exists() else ""
    return [parse(line) for line in text.splitlines() if line.count(" ") == 3]


class Recorder:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def add(self, kind: str, status: str, started: float, finished: float) -> None:
        with self._lock:
            self._out.write(f"{kind} {status} {started:.6f} {finished:.6f}\n")
            self._out.flush()


def rest_loop(spec: dict[str, Any], record: Recorder, stopping: threading.Event) -> None:
    path = f"/api/v1/users/{spec['user_id']}"
    if spec.get("operation") == "list":
        path = f"/api/v1/users?size=1&search={urllib.parse.quote(spec['search'])}"
    headers = {"Authorization": f"Bearer {spec['token']}"}
    conn: http.client.HTTPConnection | None = None
    while not stopping.is_set():
        if conn is None:
            conn = http.client.HTTPConnection(
                "127.0.0.1", spec["rest_port"], timeout=spec["timeout"]
            )
        current = conn
        started = time.monotonic()
        try:
            current.request("GET", path, headers=headers)
            response = current.getresponse()
            response.read()
            status = str(response.status)
            if response.getheader("Connection", "").lower() == "close":
                current.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            status = f"error:{exc.__class__.__name__}"
            current.close()
            conn = None
        record.add(REST, status, started, time.monotonic())
        if status.startswith("error:"):
            stopping.wait(PAUSE_AFTER_ERROR)
    if conn is not None:
        conn.close()


def grpc_loop(spec: dict[str, Any], record: Recorder, stopping: threading.Event) -> None:
    listing = spec.get("operation") == "list"
    request: Any = (
        users_pb2.ListUsersRequest(size=1, search=spec["search"])
        if listing
        else users_pb2.GetUserRequest(id=spec["user_id"])
    )
    metadata = (("authorization", f"Bearer {spec['token']}"),)
    with grpc.insecure_channel(spec["grpc_address"]) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        call = stub.ListUsers if listing else stub.GetUser
        while not stopping.is_set():
            started = time.monotonic()
            try:
                call(request, metadata=metadata, timeout=spec["timeout"])
                status = "OK"
            except grpc.RpcError as exc:
                status = exc.code().name
            record.add(GRPC, status, started, time.monotonic())


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loops: list[Callable[[dict[str, Any], Recorder, threading.Event], None]] = [
        *[rest_loop] * spec["rest_threads"],
        *[grpc_loop] * spec["grpc_threads"],
    ]
    with Path(argv[2]).open("a") as out:
        record = Recorder(out)
        threads = [
            threading.Thread(target=loop, args=(spec, record, stopping), daemon=True)
            for loop in loops
        ]
        for thread in threads:
            thread.start()
        while not stopping.wait(0.2):
            pass
        for thread in threads:
            thread.join(timeout=spec["timeout"] + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
