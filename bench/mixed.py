"""A mixed load where nothing may be lost: ``make soak`` and ``tests/live/test_load.py``.

Client processes (spawned, several threads each; every thread holds its own
keep-alive HTTP connection and its own gRPC channel) run a weighted mix of
login, me, get-by-id, list and create over REST and gRPC in a closed loop, at
saturation, for a bounded time and a bounded number of requests. Then:

- every answer must be the expected success (any other is an error);
- every acknowledged create must be readable by id over both protocols, and
  the users table must hold exactly the seeded rows plus those creates;
- the resident memory of each server's whole process tree, taken with the
  servers idle after a warm-up and again after the run, must not grow much.

:func:`soak` does all of it against a :class:`tests.support.stack.LiveStack` and
returns a :class:`SoakReport` (``problems()`` is empty when all is well).
Memory is read while no request is in flight: Argon2 (login, create) maps
~100 MiB per hash while it runs, which would swamp any reading taken mid-load.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc

from bench.pool import ProcessPool, serve
from bench.procstat import rss_bytes
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from tests.support.stack import LiveStack

REST = "rest"
GRPC = "grpc"
PROTOCOLS = (REST, GRPC)
LOGIN, ME, GET, LIST, CREATE = "login", "me", "get", "list", "create"
OPERATIONS = (LOGIN, ME, GET, LIST, CREATE)
# Per mille. Login and create hash with Argon2 (~0.2 s of CPU each, by design):
# a small share of them still takes a good part of the servers' CPU, so they
# stay rare and the mix mostly exercises the fast paths.
DEFAULT_WEIGHTS: Mapping[str, int] = {ME: 320, GET: 330, LIST: 336, CREATE: 8, LOGIN: 6}
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Plan:
    """What the clients need: where the servers are and who to act as."""

    rest_port: int
    grpc_address: str
    admin_token: str
    user_ids: tuple[str, ...]
    user_tokens: tuple[str, ...]
    login_emails: tuple[str, ...]
    password: str
    run_id: str
    weights: tuple[tuple[str, int], ...] = tuple(DEFAULT_WEIGHTS.items())


@dataclass(frozen=True)
class Phase:
    seconds: float
    max_requests: int  # per thread: a hard bound besides the clock
    label: str


@dataclass
class Tally:
    """What clients saw. Keys of ``ok``/``errors`` are ``"operation/protocol"``."""

    ok: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)  # (id, email)
    max_latency_ms: float = 0.0
    elapsed: float = 0.0

    def add(self, other: Tally) -> None:
        self.ok.update(other.ok)
        self.errors.update(other.errors)
        self.first_errors += other.first_errors[: max(0, 10 - len(self.first_errors))]
        self.created += other.created
        self.max_latency_ms = max(self.max_latency_ms, other.max_latency_ms)
        self.elapsed = max(self.elapsed, other.elapsed)

    @property
    def requests(self) -> int:
        return sum(self.ok.values()) + sum(self.errors.values())


class _Thread:
    """One closed-loop client: its own HTTP connection and gRPC channel."""

    def __init__(self, plan: Plan, seed: int, tally: Tally, lock: threading.Lock) -> None:
        self.plan = plan
        self.seed = seed
        self.random = random.Random(seed)  # noqa: S311  (load pattern, not security)
        self.tally = tally
        self.lock = lock
        self.sequence = 0
        self.http = http.client.HTTPConnection("127.0.0.1", plan.rest_port, timeout=CALL_TIMEOUT)
        self.channel = grpc.insecure_channel(plan.grpc_address)
        self.users = users_pb2_grpc.UserServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.admin_md = (("authorization", f"Bearer {plan.admin_token}"),)
        operations, weights = zip(*plan.weights, strict=True)
        self.operations: list[str] = list(operations)
        self.cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]

    def close(self) -> None:
        self.http.close()
        self.channel.close()

    def _rest(self, method: str, path: str, token: str, body: Any, expected: int) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body).encode()
        try:
            self.http.request(method, path, body=payload, headers=headers)
            response = self.http.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.http.close()  # the next request reconnects
            raise
        if response.status != expected:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {raw[:200]!r}")
        return json.loads(raw)

    def _new_user(self) -> dict[str, str]:
        self.sequence += 1
        return {
            "name": f"Soak {self.seed}-{self.sequence}",
            "email": f"soak-{self.plan.run_id}-{self.seed}-{self.sequence}@live.example.com",
            "password": self.plan.password,
        }

    def call(self, operation: str, protocol: str) -> None:
        """One request; raises unless it got the expected success with a sane body."""
        plan, pick = self.plan, self.random.randrange
        if operation == LOGIN:
            email = plan.login_emails[pick(len(plan.login_emails))]
            if protocol == REST:
                credentials = {"email": email, "password": plan.password}
                body = self._rest("POST", "/api/v1/auth/login", "", credentials, 200)
                got = body["user"]["email"], bool(body["access"])
            else:
                pair = self.auth.Login(
                    auth_pb2.LoginRequest(email=email, password=plan.password),
                    timeout=CALL_TIMEOUT,
                )
                got = pair.user.email, bool(pair.access)
            if got != (email, True):
                raise RuntimeError(f"login answered for {got}")
        elif operation == ME:
            index = pick(len(plan.user_tokens))
            token = plan.user_tokens[index]
            if protocol == REST:
                user_id = self._rest("GET", "/api/v1/auth/me", token, None, 200)["id"]
            else:
                user_id = self.auth.Me(
                    auth_pb2.MeRequest(),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=CALL_TIMEOUT,
                ).id
            if user_id != plan.user_ids[index]:
                raise RuntimeError(f"me answered {user_id}, not {plan.user_ids[index]}")
        elif operation == GET:
            wanted = plan.user_ids[pick(len(plan.user_ids))]
            if protocol == REST:
                got_id = self._rest("GET", f"/api/v1/users/{wanted}", plan.admin_token, None, 200)[
                    "id"
                ]
            else:
                request = users_pb2.GetUserRequest(id=wanted)
                got_id = self.users.GetUser(
                    request, metadata=self.admin_md, timeout=CALL_TIMEOUT
                ).id
            if got_id != wanted:
                raise RuntimeError(f"get {wanted} answered {got_id}")
        elif operation == LIST:
            if protocol == REST:
                path = "/api/v1/users?page=0&size=20"
                body = self._rest("GET", path, plan.admin_token, None, 200)
                count, total = len(body["data"]), body["total"]
            else:
                page = self.users.ListUsers(
                    users_pb2.ListUsersRequest(page=0, size=20),
                    metadata=self.admin_md,
                    timeout=CALL_TIMEOUT,
                )
                count, total = len(page.users), page.total
            if count != min(20, total) or total < len(plan.user_ids):
                raise RuntimeError(f"list answered {count} of {total}")
        elif operation == CREATE:
            new = self._new_user()
            if protocol == REST:
                created = self._rest("POST", "/api/v1/users", plan.admin_token, new, 201)
                user_id, email = created["id"], created["email"]
            else:
                create_request = users_pb2.CreateUserRequest(
                    name=new["name"], email=new["email"], password=new["password"]
                )
                reply = self.users.CreateUser(
                    create_request, metadata=self.admin_md, timeout=CALL_TIMEOUT
                )
                user_id, email = reply.id, reply.email
            if email != new["email"] or not user_id:
                raise RuntimeError(f"create answered {email!r} for {new['email']!r}")
            with self.lock:
                self.tally.created.append((user_id, email))
        else:
            raise ValueError(operation)

    def run(self, phase: Phase, deadline: float) -> None:
        # A connection left idle between phases may have been closed by the
        # server's keep-alive timeout: start each phase on a fresh one.
        self.http.close()
        done = 0
        while done < phase.max_requests and time.monotonic() < deadline:
            done += 1
            roll = self.random.randrange(self.cumulative[-1])
            operation = next(
                op for op, edge in zip(self.operations, self.cumulative, strict=True) if roll < edge
            )
            protocol = PROTOCOLS[self.random.randrange(2)]
            key = f"{operation}/{protocol}"
            started = time.perf_counter()
            try:
                self.call(operation, protocol)
            except Exception as exc:  # every failure is counted; none stops the run
                with self.lock:
                    self.tally.errors[key] += 1
                    if len(self.tally.first_errors) < 10:
                        self.tally.first_errors.append(f"{key}: {describe(exc)}")
                continue
            latency = (time.perf_counter() - started) * 1000
            with self.lock:
                self.tally.ok[key] += 1
                self.tally.max_latency_ms = max(self.tally.max_latency_ms, latency)


def describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return f"gRPC {exc.code()}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


class _ClientProcess:
    """One client process's threads; one phase per command, run by all of them at once."""

    def __init__(self, index: int, threads: int, plan: Plan) -> None:
        lock = threading.Lock()
        self.workers = [_Thread(plan, index * 1000 + n, Tally(), lock) for n in range(threads)]

    def handle(self, phase: Phase) -> Tally:
        tally = Tally()  # one per phase, shared by this process's threads
        for worker in self.workers:
            worker.tally = tally
        started = time.monotonic()
        deadline = started + phase.seconds
        running = [
            threading.Thread(target=worker.run, args=(phase, deadline), daemon=True)
            for worker in self.workers
        ]
        for thread in running:
            thread.start()
        for thread in running:
            # Bounded: each request times out after CALL_TIMEOUT.
            thread.join(timeout=phase.seconds + CALL_TIMEOUT + 10)
        tally.elapsed = time.monotonic() - started
        return tally

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def _client_main(index: int, threads: int, plan: Plan, conn: Connection) -> None:
    client = _ClientProcess(index, threads, plan)
    serve(conn, "tally", lambda: client)


class MixedPool(ProcessPool):
    """``processes`` client processes with ``threads`` threads each, reused across phases."""

    def __init__(self, plan: Plan, *, processes: int, threads: int) -> None:
        super().__init__(
            _client_main,
            (threads, plan),
            processes,
            name="mixed-client",
            join_timeout=10,
            daemon=True,
        )

    def run(self, phase: Phase) -> Tally:
        for pipe in self.pipes:
            pipe.send(phase)
        total = Tally()
        for pipe in self.pipes:
            total.add(self.expect(pipe, "tally", phase.seconds + CALL_TIMEOUT + 60))
        return total


# --- the whole soak ---------------------------------------------------------------------------


@dataclass
class SoakReport:
    seconds: float
    warmup: float
    processes: int
    threads: int
    seeded_rows: int
    tally: Tally  # the measured phase
    warmup_tally: Tally
    readable_rest: int
    readable_grpc: int
    unreadable: list[str]
    rows_expected: int
    rows_found: int
    rss: dict[str, tuple[int, int]]  # server -> (after warm-up, at the end), bytes
    max_rss_growth: float = 0.10

    @property
    def acknowledged(self) -> int:
        return len(self.tally.created) + len(self.warmup_tally.created)

    def growth(self, server: str) -> float:
        start, end = self.rss[server]
        return (end - start) / start if start else float("inf")

    def problems(self) -> list[str]:
        found: list[str] = []
        errors = sum(self.tally.errors.values()) + sum(self.warmup_tally.errors.values())
        if errors:
            firsts = self.warmup_tally.first_errors + self.tally.first_errors
            found.append(f"{errors} errors, first: {firsts[:5]}")
        if self.unreadable:
            found.append(f"{len(self.unreadable)} acknowledged creates unreadable")
        if self.rows_found != self.rows_expected:
            found.append(f"users rows {self.rows_found}, expected {self.rows_expected}")
        missing = [
            f"{op}/{proto}"
            for op in OPERATIONS
            for proto in PROTOCOLS
            if not self.tally.ok[f"{op}/{proto}"]
        ]
        if missing:
            found.append(f"never succeeded in the measured phase: {missing}")
        for server in self.rss:
            if self.growth(server) >= self.max_rss_growth:
                found.append(f"{server} RSS grew {100 * self.growth(server):.1f}%")
        return found

    def render(self) -> str:
        t = self.tally
        lines = [
            f"soak: {self.seconds:.0f}s measured after {self.warmup:.0f}s warm-up, "
            f"{self.processes} client processes x {self.threads} threads",
            f"requests: {t.requests} in {t.elapsed:.1f}s "
            f"({t.requests / max(t.elapsed, 1e-9):.0f}/s),"
            f" errors {sum(t.errors.values())} (warm-up: {self.warmup_tally.requests} requests, "
            f"errors {sum(self.warmup_tally.errors.values())}); slowest {t.max_latency_ms:.0f} ms",
            f"{'operation':<10}{'REST ok':>10}{'gRPC ok':>10}{'REST err':>10}{'gRPC err':>10}",
        ]
        for op in OPERATIONS:
            lines.append(
                f"{op:<10}{t.ok[op + '/rest']:>10}{t.ok[op + '/grpc']:>10}"
                f"{t.errors[op + '/rest']:>10}{t.errors[op + '/grpc']:>10}"
            )
        lines += [
            f"creates acknowledged: {self.acknowledged}; readable over REST "
            f"{self.readable_rest}, over gRPC {self.readable_grpc}",
            f"users rows: {self.rows_found} (seeded {self.seeded_rows} + acknowledged "
            f"{self.acknowledged} = {self.rows_expected})",
        ]
        for server, (start, end) in self.rss.items():
            lines.append(
                f"RSS {server}: {start / 2**20:.1f} MiB -> {end / 2**20:.1f} MiB "
                f"({100 * self.growth(server):+.1f}%)"
            )
        problems = self.problems()
        lines.append("OK: nothing lost" if not problems else "PROBLEMS: " + "; ".join(problems))
        return "\n".join(lines)


def seed_users(stack: LiveStack, count: int, run_id: str) -> tuple[list[str], list[str], list[str]]:
    """``count`` users registered over REST: (ids, access tokens, emails)."""

    def register(index: int) -> tuple[str, str, str]:
        email = f"seed-{run_id}-{index}@live.example.com"
        status, body = stack.rest_json(
            "POST",
            "/api/v1/auth/register",
            {"name": f"Seed {index}", "email": email, "password": stack.password},
        )
        if status != 201:
            raise RuntimeError(f"seeding user {index}: HTTP {status} {body}")
        return str(body["user"]["id"]), str(body["access"]), email

    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(register, range(count)))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def check_readable(stack: LiveStack, created: list[tuple[str, str]]) -> tuple[int, int, list[str]]:
    """Read every acknowledged create by id over both protocols."""
    rest_ok = grpc_ok = 0
    unreadable: list[str] = []
    with grpc.insecure_channel(stack.grpc_address) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)  # type: ignore[no-untyped-call]
        md = (("authorization", f"Bearer {stack.admin_token}"),)
        for user_id, email in created:
            path = f"/api/v1/users/{user_id}"
            status, body = stack.rest_json("GET", path, token=stack.admin_token)
            rest_seen = status == 200 and body["email"] == email
            try:
                reply = users.GetUser(users_pb2.GetUserRequest(id=user_id), metadata=md, timeout=10)
                grpc_seen = reply.email == email
            except grpc.RpcError:
                grpc_seen = False
            rest_ok += rest_seen
            grpc_ok += grpc_seen
            if not (rest_seen and grpc_seen):
                unreadable.append(user_id)
    return rest_ok, grpc_ok, unreadable


def _quiet_rss(stack: LiveStack) -> dict[str, int]:
    time.sleep(1.0)  # let the last answers leave and Argon2's buffers be unmapped
    return {"REST": rss_bytes(stack.rest.pids()), "gRPC": rss_bytes(stack.grpc.pids())}


def soak(
    stack: LiveStack,
    *,
    seconds: float,
    warmup: float,
    processes: int = 3,
    threads: int = 4,
    seed_count: int = 12,
    max_requests: int = 1_000_000,
    weights: Mapping[str, int] = DEFAULT_WEIGHTS,
    progress: Callable[[str], None] = lambda line: None,
) -> SoakReport:
    """Seed, warm up, measure, verify; see the module docstring. Bounded by
    ``warmup + seconds`` of load (plus setup and checks) and ``max_requests``
    per client thread and phase."""
    run_id = f"{time.time_ns() % 10**10:x}"
    progress(f"seeding {seed_count} users (Argon2)")
    ids, tokens, emails = seed_users(stack, seed_count, run_id)
    plan = Plan(
        rest_port=stack.rest_port,
        grpc_address=stack.grpc_address,
        admin_token=stack.admin_token,
        user_ids=tuple(ids),
        user_tokens=tuple(tokens),
        login_emails=tuple(emails),
        password=stack.password,
        run_id=run_id,
        weights=tuple(weights.items()),
    )
    seeded_rows = int(stack.query("SELECT COUNT(*) FROM users_user")[0][0])
    pool = MixedPool(plan, processes=processes, threads=threads)
    try:
        progress(f"warm-up {warmup:.0f}s")
        warm = pool.run(Phase(warmup, max_requests, "warm-up"))
        rss_start = _quiet_rss(stack)
        progress(f"measuring {seconds:.0f}s")
        measured = pool.run(Phase(seconds, max_requests, "measured"))
        rss_end = _quiet_rss(stack)
    finally:
        pool.close()
    for server in (stack.rest, stack.grpc):
        server.check_alive()
    created = warm.created + measured.created
    progress(f"reading back {len(created)} acknowledged creates over both protocols")
    readable_rest, readable_grpc, unreadable = check_readable(stack, created)
    rows_found = int(stack.query("SELECT COUNT(*) FROM users_user")[0][0])
    return SoakReport(
        seconds=seconds,
        warmup=warmup,
        processes=processes,
        threads=threads,
        seeded_rows=seeded_rows,
        tally=measured,
        warmup_tally=warm,
        readable_rest=readable_rest,
        readable_grpc=readable_grpc,
        unreadable=unreadable,
        rows_expected=seeded_rows + len(created),
        rows_found=rows_found,
        rss={name: (rss_start[name], rss_end[name]) for name in rss_start},
    )
