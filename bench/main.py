"""The benchmark run: set up a database, start the servers, seed, measure, report.

The servers run side by side for the whole run, on one database: for each
mode measured (``--modes``), the service over REST (``arcana.wsgi_server``, granian)
and over gRPC (``manage.py grpcrunserver --workers N``) -- in layered mode
these are the controller tier, with the service and repository tiers
(``manage.py tierserver``, ``--tier-replicas`` of each, mutual TLS between
them) behind; each protocol's floor (``bench.floor_wsgi`` on the same REST server,
``bench.floor_grpc`` on bare grpcio), with the same number of processes; and
the hop floor (``bench.floor_echo``: a bare grpcio unary echo, plaintext and
mutual TLS). Each measurement loads one of them from the same pool of client
processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from bench import floor_echo, load, profile, report
from bench.procstat import cpu_seconds, machine_busy, pids_named
from tests.support.servers import (
    PYTHON,
    ROOT,
    Server,
    free_port,
    http_ok,
    log_count,
)
from tests.support.stack import (
    PASSWORD,
    REST_READY_MARKER,
    TierPki,
    create_admin,
    grpc_server,
    jwt_key_pair,
    layered_envs,
    manage,
    mysql_database_ensure,
    rest_json,
    rest_login,
    rest_server,
    tier_pki,
    tier_server,
    wait_grpc_ready,
    wait_rest_ready,
    wait_tier_ready,
)
from tests.support.stack import server_env as stack_server_env

DEFAULT_OUT = ROOT / "bench" / "out"


@dataclass(frozen=True)
class Options:
    workers: int
    modes: tuple[str, ...]
    tier_replicas: int
    internal_deadline: float
    duration: float
    slow_duration: float
    warmup: float
    concurrency: tuple[int, ...]
    users: int
    operations: tuple[str, ...]
    out_dir: Path
    quick: bool
    profile: bool
    runs: int = 1


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="REST (granian + DRF) vs gRPC (grpcrunserver) side by side, with floors. "
        "Uses DATABASE_URL / REDIS_URL when set, else a temporary SQLite file.",
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes per server")
    parser.add_argument(
        "--modes",
        default=",".join(load.MODES),
        help=f"deployment modes to measure, comma-separated (default {','.join(load.MODES)})",
    )
    parser.add_argument(
        "--tier-replicas",
        type=int,
        default=2,
        help="layered mode: service and repository tier processes each, on ports of their "
        "own that the tier above balances per call (default 2)",
    )
    parser.add_argument("--duration", type=float, help="measured seconds per read (default 5)")
    parser.add_argument(
        "--slow-duration",
        type=float,
        help="measured seconds for create/login, which hash with Argon2 (default 5)",
    )
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 1)")
    parser.add_argument(
        "--concurrency", default="1,8", help="client processes, comma-separated (default 1,8)"
    )
    parser.add_argument("--users", type=int, help="users to seed (default 200)")
    parser.add_argument(
        "--operations",
        default=",".join(load.OPERATIONS),
        help=f"subset of {','.join(load.OPERATIONS)}",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where bench.md/png go")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: short windows, few users (CI)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample server workers with py-spy during reads; writes out/profile.md "
        "(perturbs that run's numbers a little)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="consecutive runs, each starting its servers afresh (out/run-N/); then a table "
        "of every target per run, met only if every run met it (out/runs.md)",
    )
    parser.add_argument(
        "--internal-deadline",
        type=float,
        default=10.0,
        help="layered mode: ARCANA_INTERNAL_DEADLINE, seconds per internal call (default 10, "
        "not the deployed 2: at concurrency 8 Argon2 queues for longer than 2 s on 2 cores, "
        "and a benchmark measures the queue rather than shedding it as 503s)",
    )
    args = parser.parse_args(argv)
    try:
        concurrency = tuple(sorted({int(part) for part in args.concurrency.split(",") if part}))
    except ValueError:
        parser.error("--concurrency takes integers, e.g. 1,8")
    operations = tuple(part for part in args.operations.split(",") if part)
    if unknown := set(operations) - set(load.OPERATIONS):
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    if not concurrency or min(concurrency) < 1 or args.workers < 1 or args.tier_replicas < 1:
        parser.error("--workers, --tier-replicas and --concurrency must be positive")
    if args.runs < 1:
        parser.error("--runs must be positive")
    if not args.internal_deadline > 0:
        parser.error("--internal-deadline must be positive")
    modes = tuple(part for part in args.modes.split(",") if part)
    if unknown := set(modes) - set(load.MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if not modes:
        parser.error(f"--modes takes some of {','.join(load.MODES)}")
    quick = bool(args.quick)
    duration = args.duration or (0.5 if quick else 5.0)
    users = args.users or (10 if quick else 200)
    if users < 1:
        parser.error("--users must be positive")
    return Options(
        workers=args.workers,
        modes=tuple(mode for mode in load.MODES if mode in modes),
        tier_replicas=args.tier_replicas,
        internal_deadline=args.internal_deadline,
        duration=duration,
        slow_duration=args.slow_duration or (2.0 if quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.25 if quick else 1.0),
        concurrency=concurrency,
        users=users,
        operations=tuple(op for op in load.OPERATIONS if op in operations),
        out_dir=args.out,
        quick=quick,
        profile=bool(args.profile),
        runs=args.runs,
    )


# --- database ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    database_url: str
    redis_url: str  # "" means no Redis: file-based counters, no user cache
    description: str
    server_processes: tuple[str, ...] = ()  # command names, for CPU accounting


def _redis_version(url: str) -> str:
    redis: Any = importlib.import_module("redis")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


@contextmanager
def backend() -> Iterator[Backend]:
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if database_url:
        scheme = urllib.parse.urlsplit(database_url).scheme
        if scheme.startswith(("mysql", "mariadb")):
            engine = f"MySQL/MariaDB {mysql_database_ensure(database_url)}"
        else:
            engine = scheme
        cache = (
            f"Redis {_redis_version(redis_url)}" if redis_url else "no Redis (file-based counters)"
        )
        names: tuple[str, ...] = ("mariadbd", "mysqld") if engine.startswith("MySQL") else ()
        names += ("redis-server",) if redis_url else ()
        yield Backend(database_url, redis_url, f"{engine} + {cache}", names)
        return
    import sqlite3

    with tempfile.TemporaryDirectory(prefix="arcana-bench-") as tmp:
        yield Backend(
            f"sqlite:///{tmp}/bench.sqlite3",
            "",
            f"SQLite {sqlite3.sqlite_version} (temporary file), no Redis: file-based counters, "
            "no user cache",
        )


class Counters:
    """Server-side counters of the database (statements) and Redis (commands),
    read around each window: how many round trips one request costs, measured
    from outside, without touching the code. They are global, so other clients of
    the same servers would add to them."""

    def __init__(self, db: Backend) -> None:
        self.mysql: Any = None
        self.redis: Any = None
        if "mariadbd" in db.server_processes:
            parsed = urllib.parse.urlsplit(db.database_url)
            self.mysql = importlib.import_module("MySQLdb").connect(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 3306,
                user=urllib.parse.unquote(parsed.username or "root"),
                passwd=urllib.parse.unquote(parsed.password or ""),
            )
        if db.redis_url:
            self.redis = importlib.import_module("redis").Redis.from_url(db.redis_url)

    def snapshot(self) -> tuple[float, float]:
        statements = commands = float("nan")
        if self.mysql is not None:
            cursor = self.mysql.cursor()
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            statements = float(cursor.fetchone()[1]) - 1  # not counting this one
        if self.redis is not None:
            commands = float(self.redis.info("stats")["total_commands_processed"]) - 1
        return statements, commands

    def close(self) -> None:
        if self.mysql is not None:
            self.mysql.close()
        if self.redis is not None:
            self.redis.close()


# --- servers ------------------------------------------------------------------------------


def server_env(options: Options, db: Backend) -> dict[str, str]:
    return stack_server_env(db.database_url, db.redis_url, workers=options.workers)


@dataclass
class ModeServers:
    """One mode's public servers and, in layered mode, the tiers behind them."""

    mode: str
    rest: Server
    grpc: Server
    rest_port: int
    grpc_address: str
    env: dict[str, str]  # the public servers' (the controller tier's in layered mode)
    tiers: list[Server] = field(default_factory=list)

    def rest_servers(self) -> list[Server]:
        """Every process a REST request of this mode runs in."""
        return [self.rest, *self.tiers]

    def grpc_servers(self) -> list[Server]:
        return [self.grpc, *self.tiers]


@dataclass
class Servers:
    modes: dict[str, ModeServers]
    rest_floor: Server
    grpc_floor: Server
    echo: Server
    rest_floor_port: int
    grpc_floor_address: str
    echo_plain_address: str
    echo_tls_address: str

    def for_measure(self, kind: str, mode: str) -> list[Server]:
        """The servers one measurement loads (whose CPU it counts)."""
        if kind == load.REST:
            return self.modes[mode].rest_servers()
        if kind == load.GRPC:
            return self.modes[mode].grpc_servers()
        return {
            load.REST_FLOOR: [self.rest_floor],
            load.GRPC_FLOOR: [self.grpc_floor],
            load.ECHO: [self.echo],
            load.ECHO_TLS: [self.echo],
        }[kind]


def _launch(stack: ExitStack, *servers: Server) -> None:
    for server in servers:
        stack.callback(server.stop)  # registered first: stopped even if never ready
        server.start()


def start_public(
    stack: ExitStack, options: Options, env: dict[str, str], logs: Path, mode: str
) -> ModeServers:
    """The REST server + grpcrunserver with ``env`` (monolithic, or layered's controller tier)."""
    rest_port = free_port()
    grpc_address = f"127.0.0.1:{free_port()}"
    prefix = "" if mode == load.MONOLITHIC else f"{mode}-"
    servers = ModeServers(
        mode=mode,
        rest=rest_server(
            env,
            rest_port,
            logs / f"{prefix}rest.log",
            name=f"REST {mode} (arcana.wsgi_server)",
        ),
        grpc=grpc_server(
            env,
            grpc_address,
            logs / f"{prefix}grpc.log",
            workers=options.workers,
            name=f"gRPC {mode} (grpcrunserver)",
        ),
        rest_port=rest_port,
        grpc_address=grpc_address,
        env=env,
    )
    _launch(stack, servers.rest, servers.grpc)
    return servers


def start_tiers(
    stack: ExitStack, options: Options, env: dict[str, str], logs: Path, pki: TierPki
) -> tuple[dict[str, str], list[Server]]:
    """Layered mode's service and repository tiers (``--tier-replicas`` each,
    every one on its own port, so the tier above balances per call rather than
    per connection); returns the controller tier's environment and the tiers."""
    replicas = options.tier_replicas
    service_addresses = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
    repository_addresses = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
    envs = layered_envs(
        {**env, "ARCANA_INTERNAL_DEADLINE": str(options.internal_deadline)},
        pki=pki,
        jwt_keys=jwt_key_pair(),
        service_addresses=service_addresses,
        repository_address=",".join(repository_addresses),
    )
    tiers = [
        tier_server(envs[tier], address, logs / f"{tier}-{index}.log", name=f"{tier} tier {index}")
        for tier, addresses in (
            ("repository", repository_addresses),
            ("service", service_addresses),
        )
        for index, address in enumerate(addresses)
    ]
    _launch(stack, *tiers)
    return envs["controller"], tiers


def start_servers(
    stack: ExitStack, options: Options, env: dict[str, str], logs: Path, pki: TierPki
) -> Servers:
    rest_floor_port, grpc_floor_port, echo_port, echo_tls_port = (free_port() for _ in range(4))
    grpc_floor_address = f"127.0.0.1:{grpc_floor_port}"
    floor_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.floor_settings"}
    modes: dict[str, ModeServers] = {}
    tiers: list[Server] = []
    for mode in options.modes:
        mode_env = env
        if mode == load.LAYERED:
            mode_env, tiers = start_tiers(stack, options, env, logs, pki)
        modes[mode] = start_public(stack, options, mode_env, logs, mode)
        modes[mode].tiers = tiers if mode == load.LAYERED else []
    servers = Servers(
        modes=modes,
        rest_floor=rest_server(
            floor_env,
            rest_floor_port,
            logs / "rest-floor.log",
            app="bench.floor_wsgi:application",
            name="REST floor (arcana.wsgi_server bench.floor_wsgi)",
        ),
        grpc_floor=Server(
            "gRPC floor (bare grpcio)",
            [
                PYTHON,
                "-m",
                "bench.floor_grpc",
                grpc_floor_address,
                "--workers",
                str(options.workers),
                # The service's thread pool size per process, for a like-for-like floor.
                "--max-workers",
                env.get("GRPC_MAX_WORKERS", "10"),
            ],
            floor_env,
            logs / "grpc-floor.log",
        ),
        echo=Server(
            "hop floor (bare grpcio echo)",
            [
                PYTHON,
                "-m",
                "bench.floor_echo",
                "--plain",
                f"127.0.0.1:{echo_port}",
                "--tls",
                f"127.0.0.1:{echo_tls_port}",
                "--cert",
                str(pki.cert),
                "--key",
                str(pki.key),
                "--ca",
                str(pki.ca),
                "--reply-bytes",
                str(len(echo_reply())),
                "--max-workers",
                env.get("GRPC_MAX_WORKERS", "10"),
            ],
            floor_env,
            logs / "echo.log",
        ),
        rest_floor_port=rest_floor_port,
        grpc_floor_address=grpc_floor_address,
        echo_plain_address=f"127.0.0.1:{echo_port}",
        echo_tls_address=f"127.0.0.1:{echo_tls_port}",
    )
    _launch(stack, servers.rest_floor, servers.grpc_floor, servers.echo)
    n = options.workers
    for tier in tiers:
        wait_tier_ready(tier)
    for mode_servers in modes.values():
        wait_rest_ready(mode_servers.rest, mode_servers.rest_port, n)
        wait_grpc_ready(mode_servers.grpc, mode_servers.grpc_address, n)
    servers.rest_floor.wait_until(log_count(servers.rest_floor, REST_READY_MARKER, n))
    servers.rest_floor.wait_until(http_ok(rest_floor_port, "/floor/ping"))
    servers.grpc_floor.wait_until(log_count(servers.grpc_floor, "floor ready pid", n))
    servers.echo.wait_until(log_count(servers.echo, floor_echo.READY, 1))
    return servers


# What one internal call of users.repo.user_get carries, for the hop floor's
# messages: the request as the service tier sends it, the reply as the
# repository tier answers (a UserRecord as arcana.core.wire encodes it).
_SAMPLE_ID = "0b0c7d3e-9a41-4c47-8f0e-2d6a1b5c9e77"
_SAMPLE_RECORD = {
    "id": _SAMPLE_ID,
    "name": "Bench User 123",
    "email": "seed-0123abcd-123@bench.example.com",
    "roles": ["user"],
    "sync_status": "synced",
    "is_active": True,
    "created_at": "2026-12-01T23:20:59.123456+00:00",
    "updated_at": "2026-12-01T23:20:59.123456+00:00",
    "is_superuser": False,
}


def echo_request() -> bytes:
    from protos.arcana.internal.v1 import boundary_pb2

    arguments = json.dumps({"user_id": _SAMPLE_ID}, separators=(",", ":")).encode()
    return boundary_pb2.InvokeRequest(
        boundary="users.repo", method="user_get", arguments=arguments
    ).SerializeToString()


def echo_reply() -> bytes:
    from protos.arcana.internal.v1 import boundary_pb2

    result = json.dumps(_SAMPLE_RECORD, separators=(",", ":")).encode()
    return boundary_pb2.InvokeReply(result=result).SerializeToString()


# --- seeding ---------------------------------------------------------------------------------


def _login(port: int, email: str) -> str:
    return str(rest_login(port, email, PASSWORD)["access"])


def seed(
    options: Options, servers: Servers, env: dict[str, str], run_id: str, pki: TierPki
) -> load.Target:
    """One admin (``createsuperuser``, as an operator would), then users through the
    REST API of the first mode as that admin. Every password is hashed with the
    production Argon2. Every mode runs on the same database; each signs its own
    tokens, so the admin logs in to each."""
    admin_email = f"admin-{run_id}@bench.example.com"
    create_admin(env, email=admin_email, name="Bench Admin", password=PASSWORD)
    tokens = {mode: _login(ms.rest_port, admin_email) for mode, ms in servers.modes.items()}
    seeder = next(iter(servers.modes.values()))
    token = tokens[seeder.mode]

    def create(index: int) -> str:
        status, body = rest_json(
            seeder.rest_port,
            "POST",
            "/api/v1/users",
            {
                "name": f"Bench User {index}",
                "email": f"seed-{run_id}-{index}@bench.example.com",
                "password": PASSWORD,
            },
            token,
        )
        if status != 201:
            raise RuntimeError(f"seeding user {index} failed: HTTP {status} {body}")
        return str(body["id"])

    # One request in flight per server process: Argon2 keeps each of them busy.
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        user_ids = tuple(pool.map(create, range(options.users)))
    return load.Target(
        endpoints={
            mode: load.Endpoint(ms.rest_port, ms.grpc_address, tokens[mode])
            for mode, ms in servers.modes.items()
        },
        rest_floor_port=servers.rest_floor_port,
        grpc_floor_address=servers.grpc_floor_address,
        echo=load.Echo(
            plain_address=servers.echo_plain_address,
            tls_address=servers.echo_tls_address,
            cert=str(pki.cert),
            key=str(pki.key),
            ca=str(pki.ca),
            request=echo_request(),
        ),
        user_ids=user_ids,
        login_email=f"seed-{run_id}-0@bench.example.com",
        password=PASSWORD,
        run_id=run_id,
    )


def check_same_answer(target: load.Target) -> None:
    """The same user over both protocols in every mode (and each floor)."""
    import grpc

    from protos.arcana.v1 import users_pb2, users_pb2_grpc

    user_id = target.user_ids[0]
    seen: dict[str, str] = {}
    for mode, endpoint in target.endpoints.items():
        status, rest_user = rest_json(
            endpoint.rest_port, "GET", f"/api/v1/users/{user_id}", token=endpoint.admin_token
        )
        if status != 200:
            raise RuntimeError(f"{mode} REST: HTTP {status} {rest_user}")
        seen[f"{mode} REST"] = rest_user["email"]
        with grpc.insecure_channel(endpoint.grpc_address) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)  # type: ignore[no-untyped-call]
            seen[f"{mode} gRPC"] = stub.GetUser(
                users_pb2.GetUserRequest(id=user_id),
                metadata=(("authorization", f"Bearer {endpoint.admin_token}"),),
                timeout=10,
            ).email
    _, floor_user = rest_json(target.rest_floor_port, "GET", f"/floor/users/{user_id}")
    seen["REST floor"] = floor_user["email"]
    with grpc.insecure_channel(target.grpc_floor_address) as channel:
        seen["gRPC floor"] = json.loads(
            channel.unary_unary(load.FLOOR_METHOD, None, None)(user_id.encode())
        )["email"]
    if len(set(seen.values())) != 1:
        raise RuntimeError(f"servers disagree about user {user_id}: {seen}")


# --- measuring ------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _check_alive(servers: Sequence[Server]) -> None:
    for server in servers:
        server.check_alive()


def measure(
    pool: load.ClientPool,
    servers: Sequence[Server],
    backend_pids: list[int],
    counters: Counters,
    step: Step,
    options: Options,
) -> report.Result:
    kind, operation, concurrency, mode = step
    slow = operation in (load.CREATE, load.LOGIN)
    duration = options.slow_duration if slow else options.duration
    command = load.Measure(
        kind=kind,
        operation=operation,
        start_at=time.monotonic() + 0.2,
        warmup=options.warmup,
        duration=duration,
        mode=mode,
    )
    _check_alive(servers)
    trees = [server.pids() for server in servers]
    pids = [pid for tree in trees for pid in tree]
    # A supervisor (the REST server's master, grpcrunserver's) is not a worker.
    workers = [pid for tree in trees for pid in (tree[1:] if len(tree) > 1 else tree)]
    client_pids = pool.pids(concurrency)
    pool.send(command, concurrency)
    # CPU of the server's processes (and of the database and cache servers) over
    # exactly the measured window, read while the clients are running.
    time.sleep(max(0.0, command.start_at + command.warmup - time.monotonic()))
    before = {pid: cpu_seconds([pid]) for pid in pids}
    backend_before = cpu_seconds(backend_pids)
    clients_before = cpu_seconds(client_pids)
    busy_before = machine_busy()
    counted_before = counters.snapshot()
    recorders = (
        profile.start(
            workers, duration, options.out_dir / "profile", profile_name(command, concurrency)
        )
        if options.profile and not slow
        else []
    )
    time.sleep(max(0.0, command.start_at + command.warmup + duration - time.monotonic()))
    after = {pid: cpu_seconds([pid]) for pid in pids}
    backend_after = cpu_seconds(backend_pids)
    clients_after = cpu_seconds(client_pids)
    busy_after = machine_busy()
    counted_after = counters.snapshot()
    samples = pool.collect(command, concurrency)
    profile.finish(recorders)
    _check_alive(servers)  # a server that died mid-window would explain every error
    latencies = sorted(latency for sample in samples for latency in sample.latencies_ms)
    ok = sum(sample.ok for sample in samples)
    errors = sum(sample.errors for sample in samples)
    per_process = sorted((after[pid] - before[pid] for pid in workers), reverse=True)
    server_cpu = sum(after.values()) - sum(before.values())
    return report.Result(
        kind=kind,
        mode=mode,
        operation=operation,
        concurrency=concurrency,
        ok=ok,
        errors=errors,
        duration=duration,
        rps=ok / duration,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        mean_ms=statistics.fmean(latencies) if latencies else float("nan"),
        server_cpu_ms=server_cpu * 1000 / ok if ok else float("nan"),
        backend_cpu_ms=(
            (backend_after - backend_before) * 1000 / ok if ok and backend_pids else float("nan")
        ),
        client_cpu_ms=(clients_after - clients_before) * 1000 / ok if ok else float("nan"),
        machine_busy_pct=100
        * (busy_after[0] - busy_before[0])
        / max(1.0, busy_after[2] - busy_before[2]),
        machine_steal_pct=100
        * (busy_after[1] - busy_before[1])
        / max(1.0, busy_after[2] - busy_before[2]),
        db_statements=(counted_after[0] - counted_before[0]) / ok if ok else float("nan"),
        cache_commands=(counted_after[1] - counted_before[1]) / ok if ok else float("nan"),
        worker_cpu_split=tuple(per_process),
        first_error=next((s.first_error for s in samples if s.first_error), None),
    )


def profile_name(command: load.Measure, concurrency: int) -> str:
    return f"{command.mode}-{command.kind}-{command.operation}-c{concurrency}".replace(" ", "-")


def write_profiles(options: Options, results: list[report.Result]) -> Path:
    """Top frames per profiled measurement, into out/profile.md."""
    directory = options.out_dir / "profile"
    sections = [
        "# Where the server workers spend their CPU (py-spy --gil, all workers pooled)",
        "",
        "Percent of samples in which the worker thread holding the GIL was in a frame "
        "(inclusive) or exactly at it (self). Waits on sockets release the GIL and do not show.",
        "",
    ]
    for result in results:
        name = f"{result.mode}-{result.kind}-{result.operation}-c{result.concurrency}".replace(
            " ", "-"
        )
        files = sorted(directory.glob(f"{name}-*.txt"))
        rows = profile.summarize(files)
        if not rows:
            continue
        sections += [
            f"## {report.label(result)} {result.operation}, conc {result.concurrency}"
            f" ({result.rps:.0f} rps, server CPU {result.server_cpu_ms:.2f} ms/req)",
            "",
            "| inclusive % | self % | frame |",
            "|---:|---:|---|",
            *(f"| {inc:.1f} | {own:.1f} | `{frame}` |" for frame, inc, own in rows[:30]),
            "",
            "| inclusive % | self % | frame (by inclusive share) |",
            "|---:|---:|---|",
            *(f"| {inc:.1f} | {own:.1f} | `{frame}` |" for frame, inc, own in rows[30:]),
            "",
        ]
    path = options.out_dir / "profile.md"
    path.write_text("\n".join(sections))
    return path


class Step(NamedTuple):
    kind: str
    operation: str
    concurrency: int
    mode: str  # "" for the floors and the echo


def plan(options: Options) -> list[Step]:
    """Every measurement, grouped by (operation, concurrency) so the rows compared
    with each other are measured minutes apart at most; within a group the
    order alternates, so drift on a noisy box favours neither side."""
    steps: list[Step] = []
    services = [(kind, mode) for mode in options.modes for kind in (load.REST, load.GRPC)]
    for operation in options.operations:
        for index, concurrency in enumerate(options.concurrency):
            group = list(services)
            if operation == load.GET:
                group = [(load.REST_FLOOR, ""), *group, (load.GRPC_FLOOR, "")]
                if index == 0 and load.LAYERED in options.modes:
                    # The hop floor, once, at the lowest concurrency: its p50 is the
                    # yardstick for the hops' added latency.
                    group = [(load.ECHO_TLS, ""), (load.ECHO, ""), *group]
            if index % 2:
                group.reverse()
            steps.extend(
                Step(
                    kind,
                    load.ECHO_OPERATION if kind in load.ECHO_KINDS else operation,
                    concurrency,
                    mode,
                )
                for kind, mode in group
            )
    return steps


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through every finally: servers stop

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _runs(parse_args(argv))
    except RuntimeError as exc:  # setup failures and dead servers; everything is stopped by now
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130


def _runs(options: Options) -> int:
    """One run, or ``--runs N`` in a row and the targets of each side by side."""
    if options.runs == 1:
        return _run(options)[0]
    codes: list[int] = []
    measured: list[list[report.Target]] = []
    for number in range(1, options.runs + 1):
        print(f"\nbench: run {number} of {options.runs}", flush=True)
        code, found = _run(dataclasses.replace(options, out_dir=options.out_dir / f"run-{number}"))
        codes.append(code)
        measured.append(found)
    text, markdown = report.runs_table(measured)
    print(f"\ntargets over {options.runs} consecutive runs:")
    print(text)
    (options.out_dir / "runs.md").write_text(
        f"# Targets over {options.runs} consecutive runs\n\n{markdown}\n"
    )
    print(f"\nwrote {options.out_dir / 'runs.md'}")
    return max(codes)


def _run(options: Options) -> tuple[int, list[report.Target]]:
    _stop_on_sigterm()
    started = time.monotonic()
    run_id = secrets.token_hex(4)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    logs = options.out_dir / "logs"
    logs.mkdir(exist_ok=True)
    results: list[report.Result] = []
    with ExitStack() as stack:
        db = stack.enter_context(backend())
        env = server_env(options, db)
        print(
            f"bench: {db.description}; {options.workers} processes per server; "
            f"modes {', '.join(options.modes)}"
            + (
                f" ({options.tier_replicas} service and repository tier processes)"
                if load.LAYERED in options.modes
                else ""
            ),
            flush=True,
        )
        manage(env, "migrate", "--noinput")
        pki = tier_pki(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pki-"))))
        servers = start_servers(stack, options, env, logs, pki)
        print(f"bench: servers up; seeding {options.users} users (Argon2)", flush=True)
        target = seed(options, servers, env, run_id, pki)
        check_same_answer(target)
        pool = load.ClientPool(max(options.concurrency), target)
        stack.callback(pool.close)
        backend_pids = pids_named(*db.server_processes)
        counters = Counters(db)
        stack.callback(counters.close)
        steps = plan(options)
        for number, step in enumerate(steps, 1):
            result = measure(
                pool,
                servers.for_measure(step.kind, step.mode),
                backend_pids,
                counters,
                step,
                options,
            )
            results.append(result)
            print(f"bench: [{number}/{len(steps)}] {report.one_line(result)}", flush=True)
    machine = report.machine(db.description, options.workers, options.modes, options.tier_replicas)
    text, markdown = report.render(results, machine, options.quick)
    print()
    print(text)
    (options.out_dir / "bench.md").write_text(markdown)
    chart = report.chart(results, machine, options.out_dir / "bench.png")
    print(f"\nwrote {options.out_dir / 'bench.md'} and {chart}")
    print(f"took {time.monotonic() - started:.0f}s")
    if options.profile:
        print(f"wrote {write_profiles(options, results)}")
    failed = [r for r in results if r.errors or not r.ok]
    for result in failed:
        print(f"FAILED {report.one_line(result)}: {result.first_error}", file=sys.stderr)
    return (1 if failed else 0), report.targets(results)
