"""The benchmark run: set up a database, start the four servers, seed, measure, report.

Four servers run side by side for the whole run, all with the same number of
processes: the service over REST (gunicorn ``arcana.wsgi``), the service over
gRPC (``manage.py grpcrunserver --workers N``), and each protocol's floor
(``bench.floor_wsgi`` on gunicorn, ``bench.floor_grpc`` on bare grpcio). Each
measurement loads one of them from the same pool of client processes.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench import load, profile, report
from bench.servers import (
    PYTHON,
    ROOT,
    Server,
    cpu_seconds,
    free_port,
    http_ok,
    log_count,
    machine_busy,
    pids_named,
)
from bench.stack import (
    BENCH_GUNICORN_CONF,
    PASSWORD,
    create_admin,
    grpc_server,
    manage,
    mysql_database_ensure,
    rest_json,
    rest_server,
    wait_grpc_ready,
    wait_rest_ready,
)
from bench.stack import server_env as stack_server_env

DEFAULT_OUT = ROOT / "bench" / "out"


@dataclass(frozen=True)
class Options:
    workers: int
    duration: float
    slow_duration: float
    warmup: float
    concurrency: tuple[int, ...]
    users: int
    operations: tuple[str, ...]
    out_dir: Path
    quick: bool
    profile: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="REST (gunicorn + DRF) vs gRPC (grpcrunserver) side by side, with floors. "
        "Uses DATABASE_URL / REDIS_URL when set, else a temporary SQLite file.",
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes per server")
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
    args = parser.parse_args(argv)
    try:
        concurrency = tuple(sorted({int(part) for part in args.concurrency.split(",") if part}))
    except ValueError:
        parser.error("--concurrency takes integers, e.g. 1,8")
    operations = tuple(part for part in args.operations.split(",") if part)
    if unknown := set(operations) - set(load.OPERATIONS):
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    if not concurrency or min(concurrency) < 1 or args.workers < 1:
        parser.error("--workers and --concurrency must be positive")
    quick = bool(args.quick)
    duration = args.duration or (0.5 if quick else 5.0)
    users = args.users or (10 if quick else 200)
    if users < 1:
        parser.error("--users must be positive")
    return Options(
        workers=args.workers,
        duration=duration,
        slow_duration=args.slow_duration or (2.0 if quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.25 if quick else 1.0),
        concurrency=concurrency,
        users=users,
        operations=tuple(op for op in load.OPERATIONS if op in operations),
        out_dir=args.out,
        quick=quick,
        profile=bool(args.profile),
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
class Servers:
    rest: Server
    grpc: Server
    rest_floor: Server
    grpc_floor: Server
    rest_port: int
    rest_floor_port: int
    grpc_address: str
    grpc_floor_address: str

    def by_kind(self) -> dict[str, Server]:
        return {
            load.REST: self.rest,
            load.GRPC: self.grpc,
            load.REST_FLOOR: self.rest_floor,
            load.GRPC_FLOOR: self.grpc_floor,
        }


def start_servers(stack: ExitStack, options: Options, env: dict[str, str], logs: Path) -> Servers:
    rest_port, rest_floor_port, grpc_port, grpc_floor_port = (free_port() for _ in range(4))
    grpc_address = f"127.0.0.1:{grpc_port}"
    grpc_floor_address = f"127.0.0.1:{grpc_floor_port}"
    floor_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.floor_settings"}
    servers = Servers(
        rest=rest_server(env, rest_port, logs / "rest.log", config=BENCH_GUNICORN_CONF),
        grpc=grpc_server(env, grpc_address, logs / "grpc.log", workers=options.workers),
        rest_floor=rest_server(
            floor_env,
            rest_floor_port,
            logs / "rest-floor.log",
            app="bench.floor_wsgi:application",
            config=BENCH_GUNICORN_CONF,
            name="REST floor (gunicorn bench.floor_wsgi)",
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
        rest_port=rest_port,
        rest_floor_port=rest_floor_port,
        grpc_address=grpc_address,
        grpc_floor_address=grpc_floor_address,
    )
    for server in servers.by_kind().values():
        stack.callback(server.stop)
        server.start()
    n = options.workers
    wait_rest_ready(servers.rest, rest_port, n)
    servers.rest_floor.wait_until(log_count(servers.rest_floor, "Booting worker with pid", n))
    servers.rest_floor.wait_until(http_ok(rest_floor_port, "/floor/ping"))
    wait_grpc_ready(servers.grpc, grpc_address, n)
    servers.grpc_floor.wait_until(log_count(servers.grpc_floor, "floor ready pid", n))
    return servers


# --- seeding ---------------------------------------------------------------------------------


def seed(options: Options, servers: Servers, env: dict[str, str], run_id: str) -> load.Target:
    """One admin (``createsuperuser``, as an operator would), then users through the
    REST API as that admin. Every password is hashed with the production Argon2."""
    admin_email = f"admin-{run_id}@bench.example.com"
    create_admin(env, email=admin_email, name="Bench Admin", password=PASSWORD)
    status, body = rest_json(
        servers.rest_port,
        "POST",
        "/api/v1/auth/login",
        {"email": admin_email, "password": PASSWORD},
    )
    if status != 200:
        raise RuntimeError(f"admin login failed: HTTP {status} {body}")
    token = str(body["access"])

    def create(index: int) -> str:
        status, body = rest_json(
            servers.rest_port,
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
        rest_port=servers.rest_port,
        rest_floor_port=servers.rest_floor_port,
        grpc_address=servers.grpc_address,
        grpc_floor_address=servers.grpc_floor_address,
        admin_token=token,
        user_ids=user_ids,
        login_email=f"seed-{run_id}-0@bench.example.com",
        password=PASSWORD,
        run_id=run_id,
    )


def check_same_answer(target: load.Target) -> None:
    """The same token reads the same user over both protocols (and each floor)."""
    import grpc

    from protos.arcana.v1 import users_pb2, users_pb2_grpc

    user_id = target.user_ids[0]
    status, rest_user = rest_json(
        target.rest_port, "GET", f"/api/v1/users/{user_id}", token=target.admin_token
    )
    _, floor_user = rest_json(target.rest_floor_port, "GET", f"/floor/users/{user_id}")
    with grpc.insecure_channel(target.grpc_address) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)  # type: ignore[no-untyped-call]
        grpc_user = stub.GetUser(
            users_pb2.GetUserRequest(id=user_id),
            metadata=(("authorization", f"Bearer {target.admin_token}"),),
            timeout=10,
        )
    with grpc.insecure_channel(target.grpc_floor_address) as channel:
        grpc_floor_user = json.loads(
            channel.unary_unary(load.FLOOR_METHOD, None, None)(user_id.encode())
        )
    emails = {rest_user["email"], floor_user["email"], grpc_user.email, grpc_floor_user["email"]}
    if status != 200 or len(emails) != 1:
        raise RuntimeError(f"servers disagree about user {user_id}: {emails}")


# --- measuring ------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def measure(
    pool: load.ClientPool,
    server: Server,
    backend_pids: list[int],
    counters: Counters,
    kind: str,
    operation: str,
    concurrency: int,
    options: Options,
) -> report.Result:
    slow = operation in (load.CREATE, load.LOGIN)
    duration = options.slow_duration if slow else options.duration
    command = load.Measure(
        kind=kind,
        operation=operation,
        start_at=time.monotonic() + 0.2,
        warmup=options.warmup,
        duration=duration,
    )
    server.check_alive()
    pids = server.pids()
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
            pids[1:], duration, options.out_dir / "profile", profile_name(command, concurrency)
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
    server.check_alive()  # a server that died mid-window would explain every error
    latencies = sorted(latency for sample in samples for latency in sample.latencies_ms)
    ok = sum(sample.ok for sample in samples)
    errors = sum(sample.errors for sample in samples)
    per_process = sorted((after[pid] - before[pid] for pid in pids if pid != pids[0]), reverse=True)
    server_cpu = sum(after.values()) - sum(before.values())
    return report.Result(
        kind=kind,
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
    return f"{command.kind}-{command.operation}-c{concurrency}"


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
        name = f"{result.kind}-{result.operation}-c{result.concurrency}"
        files = sorted(directory.glob(f"{name}-*.txt"))
        rows = profile.summarize(files)
        if not rows:
            continue
        sections += [
            f"## {report.LABELS[result.kind]} {result.operation}, conc {result.concurrency}"
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


def plan(options: Options) -> list[tuple[str, int, str]]:
    steps: list[tuple[str, int, str]] = []
    for operation in options.operations:
        for index, concurrency in enumerate(options.concurrency):
            if operation == load.GET:
                kinds = [load.REST_FLOOR, load.REST, load.GRPC_FLOOR, load.GRPC]
            else:
                kinds = [load.REST, load.GRPC]
            if index % 2:  # alternate who goes first, so drift on a noisy box favours neither
                kinds.reverse()
            steps.extend((operation, concurrency, kind) for kind in kinds)
    return steps


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through every finally: servers stop

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(parse_args(argv))
    except RuntimeError as exc:  # setup failures and dead servers; everything is stopped by now
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130


def _run(options: Options) -> int:
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
        print(f"bench: {db.description}; {options.workers} processes per server", flush=True)
        manage(env, "migrate", "--noinput")
        servers = start_servers(stack, options, env, logs)
        print(f"bench: servers up; seeding {options.users} users (Argon2)", flush=True)
        target = seed(options, servers, env, run_id)
        check_same_answer(target)
        pool = load.ClientPool(max(options.concurrency), target)
        stack.callback(pool.close)
        backend_pids = pids_named(*db.server_processes)
        counters = Counters(db)
        stack.callback(counters.close)
        by_kind = servers.by_kind()
        steps = plan(options)
        for number, (operation, concurrency, kind) in enumerate(steps, 1):
            result = measure(
                pool, by_kind[kind], backend_pids, counters, kind, operation, concurrency, options
            )
            results.append(result)
            print(f"bench: [{number}/{len(steps)}] {report.one_line(result)}", flush=True)
    machine = report.machine(db.description, options.workers)
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
    return 1 if failed else 0
