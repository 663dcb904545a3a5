"""Load generation: a pool of client processes, each with its own connections.

Every client process holds one keep-alive ``http.client`` connection per REST
server and one gRPC channel per gRPC server (of every mode measured, and the
floors) for the whole run, and runs one operation in a closed loop (next
request as soon as the previous answered) when told to. Processes, not
threads, so the GIL of the load generator never caps the server.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc

from bench.pool import ProcessPool, serve
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc

# Protocol "kinds" a measurement can target.
REST = "rest"
GRPC = "grpc"
REST_FLOOR = "rest-floor"
GRPC_FLOOR = "grpc-floor"
# The hop floor (bench.floor_echo): one bare grpcio unary call, in plaintext and
# with mutual TLS as the internal hops use.
ECHO = "echo"
ECHO_TLS = "echo-mtls"
ECHO_KINDS = (ECHO, ECHO_TLS)

# Deployment modes a measurement of REST or GRPC can target.
MONOLITHIC = "monolithic"
LAYERED = "layered"
MODES = (MONOLITHIC, LAYERED)

GET = "get-by-id"
LIST = "list-20"
CREATE = "create"
LOGIN = "login"
OPERATIONS = (GET, LIST, CREATE, LOGIN)
ECHO_OPERATION = "hop echo"  # the only operation of the ECHO kinds
FLOOR_METHOD = "/bench.Floor/GetUser"
ECHO_METHOD = "/bench.Echo/Invoke"
CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    """One mode's public servers and the admin's token there (each mode signs its own)."""

    rest_port: int
    grpc_address: str
    admin_token: str


@dataclass(frozen=True)
class Echo:
    """The hop floor's two ports, the client certificate for the mutual-TLS one,
    and the request to send (as many bytes as a real internal call's)."""

    plain_address: str
    tls_address: str
    cert: str
    key: str
    ca: str
    request: bytes


@dataclass(frozen=True)
class Target:
    """Everything a client needs to reach the servers and act as the admin."""

    endpoints: Mapping[str, Endpoint]  # by mode
    rest_floor_port: int
    grpc_floor_address: str
    echo: Echo | None
    user_ids: tuple[str, ...]
    login_email: str
    password: str
    run_id: str


@dataclass(frozen=True)
class Measure:
    kind: str
    operation: str
    start_at: float  # time.monotonic() value (system-wide clock, same in every process)
    warmup: float
    duration: float
    mode: str = MONOLITHIC  # for REST and GRPC; floors and the echo have none


@dataclass
class Sample:
    """What one client process saw during the measured window."""

    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None


class _Mode:
    """One mode's connections: a keep-alive REST connection, a gRPC channel, stubs."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.rest = http.client.HTTPConnection(
            "127.0.0.1", endpoint.rest_port, timeout=CALL_TIMEOUT
        )
        # A list of addresses (``ipv4:a:1,a:2``: a server's workers' own ports)
        # is balanced per call, as a round_robin client or nginx grpc_pass would.
        balanced = [("grpc.lb_policy_name", "round_robin")] if "," in endpoint.grpc_address else []
        self.channel = grpc.insecure_channel(endpoint.grpc_address, options=balanced)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.users = users_pb2_grpc.UserServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = (("authorization", f"Bearer {endpoint.admin_token}"),)
        self.rest_headers = {"Authorization": f"Bearer {endpoint.admin_token}"}
        self.json_headers = {**self.rest_headers, "Content-Type": "application/json"}

    def close(self) -> None:
        self.rest.close()
        self.channel.close()


class _Client:
    def __init__(self, index: int, target: Target) -> None:
        self.index = index
        self.target = target
        self.random = random.Random(index)  # noqa: S311  (load pattern, not security)
        self.sequence = 0
        self.modes = {mode: _Mode(endpoint) for mode, endpoint in target.endpoints.items()}
        self.rest_floor = http.client.HTTPConnection(
            "127.0.0.1", target.rest_floor_port, timeout=CALL_TIMEOUT
        )
        self.floor_channel = grpc.insecure_channel(target.grpc_floor_address)
        self.channels = [self.floor_channel]
        self.echo_calls: dict[str, Callable[..., Any]] = {}
        self.echo_request = b""
        if target.echo is not None:
            echo = target.echo
            self.echo_request = echo.request
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(echo.ca),
                private_key=_read(echo.key),
                certificate_chain=_read(echo.cert),
            )
            plain = grpc.insecure_channel(echo.plain_address)
            tls = grpc.secure_channel(echo.tls_address, credentials)
            self.channels += [plain, tls]
            self.echo_calls = {
                ECHO: plain.unary_unary(ECHO_METHOD, None, None),
                ECHO_TLS: tls.unary_unary(ECHO_METHOD, None, None),
            }
        for channel in self.channels:
            grpc.channel_ready_future(channel).result(timeout=30)
        self.floor_get = self.floor_channel.unary_unary(FLOOR_METHOD, None, None)
        # Built once, so neither protocol pays for formatting the request in the loop.
        self.get_paths = [f"/api/v1/users/{user_id}" for user_id in target.user_ids]
        self.floor_paths = [f"/floor/users/{user_id}" for user_id in target.user_ids]
        self.get_requests = [users_pb2.GetUserRequest(id=user_id) for user_id in target.user_ids]
        self.floor_requests = [user_id.encode() for user_id in target.user_ids]
        self.list_request = users_pb2.ListUsersRequest(page=0, size=20)
        login = {"email": target.login_email, "password": target.password}
        self.login_body = json.dumps(login).encode()
        self.login_request = auth_pb2.LoginRequest(**login)

    def close(self) -> None:
        for mode in self.modes.values():
            mode.close()
        self.rest_floor.close()
        for channel in self.channels:
            channel.close()

    # --- one request each; True on the expected success ---------------------------

    def _http(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        expected: int,
    ) -> bool:
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()  # the next request reconnects
            raise
        # Decoded like the gRPC stub decodes its message, so both clients do the same work.
        json.loads(payload)
        if response.status != expected:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {payload[:200]!r}")
        return True

    def _new_user(self) -> dict[str, Any]:
        self.sequence += 1
        return {
            "name": f"Bench Created {self.index}-{self.sequence}",
            "email": f"new-{self.target.run_id}-{self.index}-{self.sequence}@bench.example.com",
            "password": self.target.password,
        }

    def operation(self, kind: str, operation: str, mode: str = MONOLITHIC) -> Callable[[], bool]:
        pick = self.random.randrange
        count = len(self.target.user_ids)
        if kind in self.echo_calls and operation == ECHO_OPERATION:
            echo, request = self.echo_calls[kind], self.echo_request
            return lambda: bool(echo(request, timeout=CALL_TIMEOUT))
        if kind == REST_FLOOR and operation == GET:
            return lambda: self._http(
                self.rest_floor, "GET", self.floor_paths[pick(count)], {}, None, 200
            )
        if kind == GRPC_FLOOR and operation == GET:
            return lambda: bool(
                json.loads(self.floor_get(self.floor_requests[pick(count)], timeout=CALL_TIMEOUT))
            )
        if mode not in self.modes:
            raise ValueError(f"no {mode} servers in this run")
        m = self.modes[mode]
        md = m.metadata
        if kind == REST and operation == GET:
            return lambda: self._http(
                m.rest, "GET", self.get_paths[pick(count)], m.rest_headers, None, 200
            )
        if kind == GRPC and operation == GET:
            return lambda: bool(
                m.users.GetUser(self.get_requests[pick(count)], metadata=md, timeout=CALL_TIMEOUT)
            )
        if kind == REST and operation == LIST:
            return lambda: self._http(
                m.rest, "GET", "/api/v1/users?page=0&size=20", m.rest_headers, None, 200
            )
        if kind == GRPC and operation == LIST:
            return lambda: bool(
                m.users.ListUsers(self.list_request, metadata=md, timeout=CALL_TIMEOUT).users
            )
        if kind == REST and operation == CREATE:
            return lambda: self._http(
                m.rest,
                "POST",
                "/api/v1/users",
                m.json_headers,
                json.dumps(self._new_user()).encode(),
                201,
            )
        if kind == GRPC and operation == CREATE:
            return lambda: bool(
                m.users.CreateUser(
                    users_pb2.CreateUserRequest(**self._new_user()),
                    metadata=md,
                    timeout=CALL_TIMEOUT,
                )
            )
        if kind == REST and operation == LOGIN:
            return lambda: self._http(
                m.rest,
                "POST",
                "/api/v1/auth/login",
                {"Content-Type": "application/json"},
                self.login_body,
                200,
            )
        if kind == GRPC and operation == LOGIN:
            return lambda: bool(m.auth.Login(self.login_request, timeout=CALL_TIMEOUT).access)
        raise ValueError(f"no {operation} for {kind}")

    def handle(self, command: Measure) -> Sample:
        """One measurement: ``command``'s operation in a closed loop over its window."""
        call = self.operation(command.kind, command.operation, command.mode)
        # Fresh REST connections per measurement: a connection left idle between
        # measurements may have been closed by the server's keep-alive timeout.
        for mode in self.modes.values():
            mode.rest.close()
        self.rest_floor.close()
        measured_from = command.start_at + command.warmup
        until = measured_from + command.duration
        sample = Sample()
        while time.monotonic() < command.start_at:
            time.sleep(0.001)
        clock = time.perf_counter
        while True:
            started = clock()
            try:
                ok = call()
                error = None if ok else "unexpected response"
            except Exception as exc:  # every failure is counted, none stops the run
                ok, error = False, _describe(exc)
            finished = clock()
            now = time.monotonic()
            if now >= until:
                break  # completed after the window: neither counted nor timed
            if now < measured_from:
                continue
            if ok:
                sample.ok += 1
                sample.latencies_ms.append((finished - started) * 1000.0)
            else:
                sample.errors += 1
                sample.first_error = sample.first_error or error
        return sample


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else ""
        return f"gRPC {code}: {details}"
    return f"{type(exc).__name__}: {exc}"


def _worker(index: int, target: Target, conn: Connection) -> None:
    serve(conn, "sample", lambda: _Client(index, target))


class ClientPool(ProcessPool):
    """``size`` client processes, reused for every measurement."""

    def __init__(self, size: int, target: Target) -> None:
        super().__init__(_worker, (target,), size, name="bench-client", join_timeout=5)

    def pids(self, concurrency: int) -> list[int]:
        return [p.pid for p in self.processes[:concurrency] if p.pid is not None]

    def send(self, command: Measure, concurrency: int) -> None:
        """Start ``command`` on the first ``concurrency`` clients (returns at once)."""
        for pipe in self.pipes[:concurrency]:
            pipe.send(command)

    def collect(self, command: Measure, concurrency: int) -> list[Sample]:
        """Wait for what those clients measured."""
        slack = command.start_at - time.monotonic() + command.warmup + command.duration
        return [
            self.expect(pipe, "sample", timeout=max(slack, 0) + CALL_TIMEOUT + 30)
            for pipe in self.pipes[:concurrency]
        ]
