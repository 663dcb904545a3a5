"""SIGTERM under load: the REST server's master (``arcana.wsgi_server``,
granian) and ``grpcrunserver --workers 2``'s
supervisor, while client threads keep calling.

Every call that the server took on must get its full, correct answer; calls
that arrive once it is going are refused cleanly (connection refused /
UNAVAILABLE), never half-answered, never 5xx / INTERNAL; and the processes
exit 0 within the grace period. Some callers log in (Argon2, a few hundred
milliseconds each), so calls are certainly in flight when the signal lands.
"""

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc
from tests.support.clients import bearer
from tests.support.servers import Server
from tests.support.stack import LiveStack

pytestmark = pytest.mark.live

GRACE = 5
EXIT_SLACK = 3.0  # a loaded 2-core machine is slow to reap processes
MAX_CALLS_PER_THREAD = 3000
REFUSED = "refused"
OK = "ok"


@dataclass
class Outcomes:
    """What every caller saw, with times relative to the signal."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[tuple[str, str, float, float]] = field(default_factory=list)  # kind, outcome, t0, t1

    def add(self, kind: str, outcome: str, started: float, finished: float) -> None:
        with self.lock:
            self.seen.append((kind, outcome, started, finished))

    def counts(self) -> Counter[str]:
        return Counter(outcome for _, outcome, _, _ in self.seen)

    def failures(self) -> list[tuple[str, str, float, float]]:
        return [row for row in self.seen if row[1] not in (OK, REFUSED)]


class Hammer:
    """Threads calling in a closed loop until stopped (or 60 s, or a call count)."""

    def __init__(self, calls: dict[str, Callable[[], str]], threads_per_call: int) -> None:
        self.outcomes = Outcomes()
        self.stopping = threading.Event()
        self.until = time.monotonic() + 60
        self.threads = [
            threading.Thread(target=self.loop, args=(kind, call), daemon=True)
            for kind, call in calls.items()
            for _ in range(threads_per_call)
        ]
        for thread in self.threads:
            thread.start()

    def loop(self, kind: str, call: Callable[[], str]) -> None:
        for _ in range(MAX_CALLS_PER_THREAD):
            started = time.monotonic()
            if self.stopping.is_set() or started >= self.until:
                return
            outcome = call()
            self.outcomes.add(kind, outcome, started, time.monotonic())
            if outcome == REFUSED:
                time.sleep(0.02)  # nothing listens any more: do not spin

    def stop(self) -> Outcomes:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=GRACE + 15)  # each call has a timeout below that
        assert not any(thread.is_alive() for thread in self.threads)
        return self.outcomes


def terminate(server: Server) -> tuple[float, float, int]:
    """SIGTERM to the server's main process only; (signal time, seconds to exit, code)."""
    assert server.process is not None
    signalled = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    code = server.process.wait(timeout=GRACE + 30)
    return signalled, time.monotonic() - signalled, code


def report(name: str, outcomes: Outcomes, signalled: float, took: float, code: int) -> None:
    drained = [row for row in outcomes.seen if row[1] == OK and row[2] < signalled < row[3]]
    print(
        f"\n{name}: exit {code} {took:.2f}s after SIGTERM; outcomes {dict(outcomes.counts())}; "
        f"in flight at SIGTERM and answered: {Counter(row[0] for row in drained)}"
    )


def check(
    outcomes: Outcomes, signalled: float, took: float, code: int, *, unmatched: str = ""
) -> None:
    # Every call: answered in full, or refused, or (gRPC only) ``unmatched``.
    # Known upstream defect (grpc/grpc#41785, fix proposed in #41786): grpc core
    # fails with CANCELLED the calls that reached its transport but were not yet
    # matched to a handler when Server.stop() begins (0-3 per shutdown under
    # load, sent within milliseconds of the signal). They never ran, so nothing
    # is half-done; the count is printed so a grpcio upgrade shows when it is gone.
    assert [row for row in outcomes.failures() if row[1] != unmatched] == []
    assert code == 0
    assert took < GRACE + EXIT_SLACK
    # Calls that were running when the signal landed were answered in full.
    assert any(row[1] == OK and row[2] < signalled < row[3] for row in outcomes.seen)
    # Once the server was gone, every call was refused.
    gone = signalled + took
    after = [row[1] for row in outcomes.seen if row[2] > gone + 0.2]
    assert after
    assert set(after) == {REFUSED}


# --- REST ----------------------------------------------------------------------------------


def rest_caller(
    port: int,
    method: str,
    path: str,
    body: dict[str, str] | None,
    token: str,
    expect: str,
    *,
    connect_timeout: float = GRACE + 10,
) -> Callable[[], str]:
    """One request per call on a fresh connection; the outcome as a word.
    ``connect_timeout`` bounds the connect alone (a published container port
    can drop connection attempts while podman tears its forwarding down)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = json.dumps(body) if body is not None else None

    def call() -> str:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=connect_timeout)
        try:
            try:
                conn.connect()
            except ConnectionRefusedError:
                return REFUSED
            assert conn.sock is not None
            conn.sock.settimeout(GRACE + 10)
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except http.client.RemoteDisconnected:
                return "closed without an answer"
            except (OSError, http.client.HTTPException) as exc:
                return f"broken: {type(exc).__name__}"
            if response.status != 200:
                return f"HTTP {response.status}"
            try:
                answered = json.loads(raw)
            except ValueError:
                return "half an answer"
            if expect not in json.dumps(answered):
                return "wrong answer"
            return OK
        finally:
            conn.close()

    return call


def _drain_rest(stack: LiveStack, name: str, server: Server, port: int) -> None:
    credentials = {"email": stack.admin_email, "password": stack.password}
    calls = {
        "me": rest_caller(port, "GET", "/api/v1/auth/me", None, stack.admin_token, stack.admin_id),
        "login": rest_caller(port, "POST", "/api/v1/auth/login", credentials, "", stack.admin_id),
    }
    load = Hammer(calls, 3)
    time.sleep(1.5)
    signalled, took, code = terminate(server)
    time.sleep(1.0)  # keep calling the dead port for a while
    outcomes = load.stop()

    report(name, outcomes, signalled, took, code)
    check(outcomes, signalled, took, code)


def test_rest_drains_in_flight_requests_on_sigterm(stack: LiveStack) -> None:
    server, port = stack.spawn_rest(workers=2, env_overrides={"REST_GRACEFUL_TIMEOUT": str(GRACE)})
    _drain_rest(stack, "REST", server, port)


# --- gRPC ----------------------------------------------------------------------------------


def grpc_caller(
    address: str, channels: list[grpc.Channel], call: Callable[[auth_pb2_grpc.AuthServiceStub], str]
) -> Callable[[], str]:
    """Calls on one channel per caller thread, kept across calls as a real client would."""
    local = threading.local()

    def run() -> str:
        if not hasattr(local, "stub"):
            channel = grpc.insecure_channel(address)
            channels.append(channel)
            local.stub = auth_pb2_grpc.AuthServiceStub(channel)
        try:
            return call(local.stub)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return REFUSED
            return f"{exc.code()}: {exc.details()}"

    return run


def test_grpcrunserver_drains_in_flight_calls_on_sigterm(stack: LiveStack) -> None:
    server, address = stack.spawn_grpc(workers=2, env_overrides={"GRPC_SHUTDOWN_GRACE": str(GRACE)})
    metadata = bearer(stack.admin_token)
    login = auth_pb2.LoginRequest(email=stack.admin_email, password=stack.password)

    def me(stub: auth_pb2_grpc.AuthServiceStub) -> str:
        reply = stub.Me(auth_pb2.MeRequest(), metadata=metadata, timeout=GRACE + 10)
        return OK if reply.id == stack.admin_id else "wrong answer"

    def log_in(stub: auth_pb2_grpc.AuthServiceStub) -> str:
        pair = stub.Login(login, timeout=GRACE + 10)
        return OK if pair.user.id == stack.admin_id and pair.access else "wrong answer"

    channels: list[grpc.Channel] = []
    load = Hammer(
        {"me": grpc_caller(address, channels, me), "login": grpc_caller(address, channels, log_in)},
        3,
    )
    try:
        time.sleep(1.5)
        signalled, took, code = terminate(server)
        time.sleep(1.0)  # keep calling the dead port for a while
        outcomes = load.stop()
    finally:
        load.stopping.set()
        for channel in channels:
            channel.close()

    report("grpcrunserver --workers 2", outcomes, signalled, took, code)
    check(outcomes, signalled, took, code, unmatched="StatusCode.CANCELLED: CANCELLED")
