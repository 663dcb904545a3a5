"""``make bench-scaling``: does a second server process double throughput?

Authenticated get-by-id (the admin reads its own record: user cache warm) at
concurrency 8 against, side by side on one MariaDB database and Redis with
production settings:

- **REST**: ``arcana.wsgi_server`` (granian) as deployed, ``REST_WORKERS=1``
  and ``=2``;
- **gRPC**: ``manage.py grpcrunserver --workers 1`` and ``--workers 2
  --worker-ports BASE``, the 2-worker one loaded two ways: over the workers'
  own ports with ``round_robin`` (calls spread per call, the figure the ratio
  is taken from) and through the shared SO_REUSEPORT port (connections
  spread by the kernel's hash: how uneven that gets).

All servers run at once, idle but for the one measured, in interleaved rounds
(1 worker, 2 workers, 1, 2, ...) so the machine's noise falls on both. Per
measurement: requests per second; server CPU seconds per request (user +
system of the server's process tree over the window); the client pool's CPU
per request; and each worker's share of the calls, from the per-worker
counter files of the server's Prometheus multiprocess directory
(``arcana.core.metrics.counts_by_process``). The figures are medians over
rounds; "rps per server CPU-s" (requests per server-CPU-second) 2 vs 1 says
whether two workers do the same work per request without contention, which
holds even where the machine has no spare core for the second worker.

Pinning (``taskset``): servers on ``--server-cpus``, the client processes on
``--client-cpus``. By default, with 4 or more CPUs, servers get the first
half and clients the rest; with fewer, nothing is pinned (two server workers
need both cores of a 2-core machine, so the clients, MariaDB and Redis share
them) and the table says so.

Run from the project root: ``.venv/bin/python -m bench.scaling [--rounds 3]
[--seconds 5] [--concurrency 8] [--threads N] [--database-url mysql://...] [--redis-url
redis://...] [--server-cpus 0,1] [--client-cpus 2,3]``; the database is a
new one beside the one the URL names (``<name>_scaling_<random>``), dropped
after; the Redis keys are under a prefix of the run's, deleted after. Writes
``bench/out/scaling.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from arcana.core.metrics import counts_by_process
from bench import load
from bench.procstat import CLOCK_TICKS, cpu_seconds, machine_busy, pids_named
from tests.support.servers import ROOT, Server, free_port
from tests.support.stack import (
    PASSWORD,
    create_admin,
    database_name,
    grpc_server,
    is_mysql_url,
    manage,
    mysql_database_create,
    mysql_database_drop,
    redis_delete_prefix,
    rest_login,
    rest_server,
    server_env,
    wait_grpc_ready,
    wait_rest_ready,
)

OUT = ROOT / "bench" / "out" / "scaling.json"

WARMUP = 1.0
TARGET_RATIO = 1.7
# Measured variants: (name, protocol, workers, endpoint key of the load.Target).
VARIANTS = (
    ("REST 1w", load.REST, 1, "w1"),
    ("REST 2w", load.REST, 2, "w2"),
    ("gRPC 1w", load.GRPC, 1, "w1"),
    ("gRPC 2w", load.GRPC, 2, "w2"),
    ("gRPC 2w shared port", load.GRPC, 2, "w2-shared"),
)
SAMPLE = {load.REST: "arcana_http_requests_total", load.GRPC: "arcana_grpc_calls_total"}


def _cpus(text: str) -> list[int]:
    try:
        cpus = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of CPU numbers: {text!r}") from None
    available = os.sched_getaffinity(0)
    if not cpus or not set(cpus) <= available:
        raise argparse.ArgumentTypeError(f"CPUs {text!r} not among {sorted(available)}")
    return cpus


def default_pinning() -> tuple[list[int], list[int]]:
    """(server CPUs, client CPUs): halves with 4 CPUs or more, else all for both."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 4:
        return cpus, cpus
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


def pinned(server: Server, cpus: Sequence[int], metrics_dir: Path) -> Server:
    """``server`` run under ``taskset`` on ``cpus``, counting into ``metrics_dir``."""
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SystemExit("taskset (util-linux) is needed to pin the servers")
    return dataclasses.replace(
        server,
        argv=[taskset, "-c", ",".join(map(str, cpus)), *server.argv],
        env={**server.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )


def port_pair() -> int:
    """A free port whose next one is free too (the workers' own ports, BASE+i)."""
    for _ in range(100):
        base = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two free ports in a row")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """CPU seconds so far (the server's tree, the clients, MariaDB + Redis, the
    whole machine) and the calls each worker has counted."""

    server: float
    client: float
    backing: float
    machine: float
    served: dict[int, float]

    @classmethod
    def take(
        cls,
        server: list[int],
        client: list[int],
        backing: list[int],
        metrics_dir: Path,
        protocol: str,
    ) -> Snapshot:
        return cls(
            server=cpu_seconds(server),
            client=cpu_seconds(client),
            backing=cpu_seconds(backing),
            machine=machine_busy()[0] / CLOCK_TICKS,
            served=counts_by_process(str(metrics_dir), SAMPLE[protocol]),
        )


@dataclasses.dataclass
class Launched:
    server: Server
    metrics_dir: Path


def measure_one(
    pool: load.ClientPool,
    launched: Launched,
    protocol: str,
    endpoint: str,
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    """One closed-loop window of get-by-id: throughput, CPU per request, shares."""
    command = load.Measure(
        kind=protocol,
        operation=load.GET,
        start_at=time.monotonic() + 0.3,
        warmup=WARMUP,
        duration=seconds,
        mode=endpoint,
    )
    pool.send(command, concurrency)
    server_pids, client_pids = launched.server.pids(), pool.pids(concurrency)
    backing = pids_named("mariadbd", "mysqld", "redis-server")
    time.sleep(max(0.0, command.start_at + command.warmup - time.monotonic()))
    before = Snapshot.take(server_pids, client_pids, backing, launched.metrics_dir, protocol)
    time.sleep(max(0.0, command.start_at + command.warmup + seconds - time.monotonic()))
    after = Snapshot.take(server_pids, client_pids, backing, launched.metrics_dir, protocol)
    samples = pool.collect(command, concurrency)
    ok = sum(sample.ok for sample in samples)
    errors = sum(sample.errors for sample in samples)
    if errors:
        first = next(s.first_error for s in samples if s.first_error)
        raise RuntimeError(f"{errors} failed requests ({protocol} {endpoint}): {first}")
    served = {pid: count - before.served.get(pid, 0.0) for pid, count in after.served.items()}
    served = {pid: count for pid, count in served.items() if count > 0}
    total = sum(served.values()) or 1.0
    ours = (after.server - before.server) + (after.client - before.client)
    ours += after.backing - before.backing
    return {
        # Cores busy with other work meanwhile (a shared machine's neighbours).
        "others_cores": max(0.0, (after.machine - before.machine - ours) / seconds),
        "rps": ok / seconds,
        "server_cpu_ms": (after.server - before.server) * 1000 / max(ok, 1),
        "client_cpu_ms": (after.client - before.client) * 1000 / max(ok, 1),
        "backing_cpu_ms": (after.backing - before.backing) * 1000 / max(ok, 1),
        "shares": sorted((count / total for count in served.values()), reverse=True),
    }


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(result[key]) for result in rounds)


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Medians over rounds per variant, plus the worst spread any round saw."""
    summary: dict[str, dict[str, Any]] = {}
    for name, *_ in VARIANTS:
        results = [one[name] for one in rounds]
        summary[name] = {
            key: _median(results, key)
            for key in ("rps", "server_cpu_ms", "client_cpu_ms", "backing_cpu_ms", "others_cores")
        }
        summary[name]["rps_per_server_cpu_s"] = 1000 / summary[name]["server_cpu_ms"]
        # The most one worker took in any round: 0.5 is an even split of two.
        summary[name]["max_share"] = max(max(result["shares"], default=1.0) for result in results)
        summary[name]["shares"] = [result["shares"] for result in results]
    return summary


def table(summary: dict[str, dict[str, Any]], cpus: int) -> str:
    lines = [
        f"{'':22} {'rps':>7} {'server CPU':>11} {'client CPU':>11} {'DB+Redis':>9} "
        f"{'rps/server':>11} {'busiest worker':>15} {'others':>7}",
        f"{'':22} {'':>7} {'ms/req':>11} {'ms/req':>11} {'ms/req':>9} {'CPU-s':>11} "
        f"{'(max round)':>15} {'cores':>7}",
    ]
    for name, *_ in VARIANTS:
        row = summary[name]
        lines.append(
            f"{name:22} {row['rps']:7.0f} {row['server_cpu_ms']:11.2f} "
            f"{row['client_cpu_ms']:11.2f} {row['backing_cpu_ms']:9.2f} "
            f"{row['rps_per_server_cpu_s']:11.0f} {row['max_share']:14.0%} "
            f"{row['others_cores']:7.2f}"
        )
    lines.append("")
    for protocol, two in (("REST", "REST 2w"), ("gRPC", "gRPC 2w")):
        one = summary[f"{protocol} 1w"]
        ratio = summary[two]["rps"] / one["rps"]
        cpu_ratio = summary[two]["rps_per_server_cpu_s"] / one["rps_per_server_cpu_s"]
        # What the CPUs the neighbours left allow at the 2-worker run's cost per
        # request (server + clients + MariaDB and Redis).
        row = summary[two]
        per_request = row["server_cpu_ms"] + row["client_cpu_ms"] + row["backing_cpu_ms"]
        ceiling = (cpus - row["others_cores"]) * 1000 / per_request
        verdict = "met" if ratio >= TARGET_RATIO else "missed"
        lines.append(
            f"{protocol}: 2 workers / 1 = {ratio:.2f}x (target {TARGET_RATIO}x: {verdict}); "
            f"per server CPU-second {cpu_ratio:.2f}x; the CPU others left allows "
            f"{ceiling:.0f} rps at 2-worker cost ({ceiling / one['rps']:.2f}x one worker)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "mysql://root@127.0.0.1:3306/arcana"),
        help="a mysql:// URL; the run makes a database of its own beside it",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--threads", type=int, help="REST_THREADS per REST worker (default: as deployed)"
    )
    parser.add_argument("--server-cpus", type=_cpus)
    parser.add_argument("--client-cpus", type=_cpus)
    options = parser.parse_args(argv)
    if options.rounds < 1 or options.seconds <= 0 or options.concurrency < 1:
        parser.error("--rounds, --seconds and --concurrency must be positive")
    if not is_mysql_url(options.database_url):
        parser.error("--database-url must be a mysql:// URL (the bench is about production)")
    server_cpus, client_cpus = default_pinning()
    server_cpus = options.server_cpus or server_cpus
    client_cpus = options.client_cpus or client_cpus
    shared_cpus = bool(set(server_cpus) & set(client_cpus))
    pinning = (
        f"servers on CPUs {server_cpus}, clients on CPUs {client_cpus}"
        + (" (shared: no spare cores to separate them)" if shared_cpus else "")
        + f"; MariaDB and Redis unpinned; {os.cpu_count()} CPUs"
    )
    print(f"bench-scaling: {pinning}", flush=True)

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arcana-scale-")))
        # Named after the URL's own database, so a run stays within its owner's names.
        prefix_name = f"{database_name(options.database_url)}_scaling"
        database_url = mysql_database_create(options.database_url, prefix=prefix_name)
        stack.callback(mysql_database_drop, database_url)
        prefix = f"bench-scaling-{secrets.token_hex(3)}"
        stack.callback(redis_delete_prefix, options.redis_url, prefix)
        env = server_env(
            database_url,
            options.redis_url,
            overrides={"CACHE_KEY_PREFIX": prefix, "USER_CACHE": "true"},
        )
        if options.threads:
            env["REST_THREADS"] = str(options.threads)
        manage(env, "migrate", "--no-input", "-v", "0")
        create_admin(env, email="bench@example.com", name="Bench", password=PASSWORD)

        def launch(server: Server, name: str) -> Launched:
            metrics_dir = directory / f"metrics-{name}"
            metrics_dir.mkdir()
            launched = Launched(pinned(server, server_cpus, metrics_dir), metrics_dir)
            launched.server.start()
            stack.callback(launched.server.stop)
            return launched

        rest_ports = {1: free_port(), 2: free_port()}
        rest = {
            workers: launch(
                rest_server(env, port, directory / f"rest{workers}.log", workers=workers),
                f"rest{workers}",
            )
            for workers, port in rest_ports.items()
        }
        grpc_addresses = {1: f"127.0.0.1:{free_port()}", 2: f"127.0.0.1:{free_port()}"}
        base = port_pair()
        one = grpc_server(env, grpc_addresses[1], directory / "grpc1.log", workers=1)
        two = grpc_server(env, grpc_addresses[2], directory / "grpc2.log", workers=2)
        two = dataclasses.replace(two, argv=[*two.argv, "--worker-ports", str(base)])
        grpc = {1: launch(one, "grpc1"), 2: launch(two, "grpc2")}
        for workers, launched in rest.items():
            wait_rest_ready(launched.server, rest_ports[workers], workers)
        for workers, launched in grpc.items():
            wait_grpc_ready(launched.server, grpc_addresses[workers], workers)
        body = rest_login(rest_ports[1], "bench@example.com", PASSWORD)
        token = str(body["access"])
        spread = f"ipv4:127.0.0.1:{base},127.0.0.1:{base + 1}"
        target = load.Target(
            endpoints={
                "w1": load.Endpoint(rest_ports[1], grpc_addresses[1], token),
                "w2": load.Endpoint(rest_ports[2], spread, token),
                "w2-shared": load.Endpoint(rest_ports[2], grpc_addresses[2], token),
            },
            rest_floor_port=rest_ports[1],
            grpc_floor_address=grpc_addresses[1],
            echo=None,
            user_ids=(str(body["user"]["id"]),),
            login_email="bench@example.com",
            password=PASSWORD,
            run_id=prefix,
        )
        # The client processes inherit this process's CPUs.
        saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, client_cpus)
        try:
            pool = load.ClientPool(options.concurrency, target)
        finally:
            os.sched_setaffinity(0, saved)
        stack.callback(pool.close)
        servers = {("REST", 1): rest[1], ("REST", 2): rest[2]}
        servers |= {("gRPC", 1): grpc[1], ("gRPC", 2): grpc[2]}
        for name, protocol, workers, endpoint in VARIANTS:  # warm every path and cache
            launched = servers[(name.split()[0], workers)]
            measure_one(pool, launched, protocol, endpoint, options.concurrency, 1.0)
        rounds: list[dict[str, dict[str, Any]]] = []
        for number in range(options.rounds):
            # 1w then 2w, then 2w then 1w: drift in the machine's load falls on both.
            order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
            result = {}
            for name, protocol, workers, endpoint in order:
                launched = servers[(name.split()[0], workers)]
                result[name] = measure_one(
                    pool, launched, protocol, endpoint, options.concurrency, options.seconds
                )
            rounds.append(result)
            print(
                f"round {number + 1}: "
                + ", ".join(
                    f"{name} {result[name]['rps']:.0f} rps "
                    f"({'/'.join(f'{share:.0%}' for share in result[name]['shares'])})"
                    for name, *_ in VARIANTS
                ),
                flush=True,
            )
    summary = summarise(rounds)
    cpus = len(set(server_cpus) | set(client_cpus))
    report = table(summary, cpus)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"summary": summary, "rounds": rounds, "pinning": pinning, "options": vars(options)},
            indent=2,
        )
    )
    print(
        f"\nget-by-id at concurrency {options.concurrency}, median of {options.rounds} "
        f"interleaved rounds of {options.seconds:g} s; {pinning}:\n{report}\n"
        f"written to {OUT.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
