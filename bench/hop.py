"""One internal hop, taken apart: ``python -m bench.hop`` (``make bench-hop``).

``make bench`` judges a hop by (layered p50 - monolithic p50) / hops over the
whole stack, where a run's noise is as large as the hop. This measures the
hop alone, from a process set up as the controller tier of a real layered
stack (``tests.support.stack.live_stack``: repository and service ``tierserver`` s on
MariaDB + Redis, mutual TLS), calling the service tier directly through its
boundary client (``users.service``, a ``RemoteBoundary``), interleaved round by
round with:

- the **hop floor**: ``bench.floor_echo``'s bare grpcio echo on mutual TLS with
  the tiers' own certificates, in its own process, sent and answering as many
  bytes as a real ``user_get`` call;
- a **call with no I/O in the called tier** (``users.service.password_check``:
  the password rules, a few microseconds of CPU), so the difference to the
  echo is the hop's own software (codec, metadata, servicer, interceptors);
- a **call with one cache read there** (``users.service.user_get`` for a user
  whose record is in Redis: what a warm get-by-id crosses), and the same work
  done in this process (``users.repository.user_cached``), which monolithic
  mode does in-process too.

The local work is timed **as a request meets it**: each call right after an
echo round trip (not timed), so this process, Redis and the CPUs are as idle
as when a request has just arrived. Back to back, a Redis read answers in a
third of the time (both processes stay on a busy CPU; on this VM a wake-up
from idle costs tens of microseconds each way), which is not what a request
in either mode pays; that figure is printed too, for comparison.

Each call's p50 is the median of ``--rounds`` rounds of ``--calls`` calls at
concurrency 1; what a hop *adds* is its p50 minus the same work done locally.
For the echo and the two hops the table also gives the CPU time each call
costs the calling process and the called one (the echo's process, or the
service tier's), from ``getrusage`` and ``/proc/PID/stat``: where a hop's
time goes beyond the echo's.
Needs ``DATABASE_URL`` (mysql://) and ``REDIS_URL``, like ``tests/live``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.procstat import cpu_seconds
from tests.support.servers import Server, free_port, log_count

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSPHRASE = "an unusual passphrase for the hop bench 42"  # noqa: S105 - a bench user's
CALLS = (
    ("echo", "hop floor: bare grpcio echo, mutual TLS (its own process)"),
    ("plain", "hop, no I/O in the called tier (users.service.password_check)"),
    ("plain_local", "  the same work in this process, as a request meets it"),
    ("cached", "hop, one cache read in the called tier (users.service.user_get, warm)"),
    ("cached_local", "  the same work in this process, as a request meets it (user_cached)"),
    ("cached_loop", "  the same read back to back (a warm loop; no request meets it so)"),
)
# Timed right after an (untimed) echo round trip: see the module docstring.
AFTER_ECHO = frozenset({"plain_local", "cached_local"})
# Whose CPU each call costs besides this process's: the echo's, or the service tier's.
SERVED_BY = {"echo": "echo", "plain": "service", "cached": "service"}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _p50(
    call: Callable[[], object],
    calls: int,
    *,
    before: Callable[[], object] | None = None,
    cpu: dict[str, list[float]] | None = None,
    server_pids: list[int] | None = None,
) -> float:
    """The median latency of ``call`` in ms; each one after ``before`` (not
    timed) if given. With ``cpu``, appends this process's and
    ``server_pids``' CPU time per call, in microseconds."""
    for _ in range(min(300, calls)):
        call()
    latencies = []
    own, served = _own_cpu(), cpu_seconds(server_pids or [])
    for _ in range(calls):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    if cpu is not None:
        cpu["client"].append((_own_cpu() - own) / calls * 1e6)
        cpu["server"].append((cpu_seconds(server_pids or []) - served) / calls * 1e6)
    return statistics.median(latencies) * 1000


def child(
    echo_address: str, target: str, rounds: int, calls: int, pids: dict[str, list[int]]
) -> dict[str, dict[str, list[float]]]:
    """Runs in the controller tier's environment (``DJANGO_SETTINGS_MODULE``
    and the tier variables set by the parent). ``pids``: the echo's and the
    service tier's processes. Returns each call's p50 per round (``"p50"``)
    and, for the calls that cross, CPU per call (``"client"``, ``"server"``)."""
    import django

    django.setup()
    import grpc

    import users
    from arcana.core import delegation
    from bench.main import echo_request
    from users import repository, services
    from users.records import Actor

    delegation.connect()
    admin = Actor(id=target, roles=("admin",), is_superuser=True)
    tls = {
        name: Path(os.environ[f"ARCANA_INTERNAL_TLS_{name}"]).read_bytes()
        for name in ("CERT", "KEY", "CA")
    }
    channel = grpc.secure_channel(
        echo_address,
        grpc.ssl_channel_credentials(
            root_certificates=tls["CA"], private_key=tls["KEY"], certificate_chain=tls["CERT"]
        ),
    )
    echo = channel.unary_unary("/bench.Echo/Invoke", None, None)
    request = echo_request()
    work: dict[str, Callable[[], object]] = {
        "echo": lambda: echo(request, timeout=5),
        "plain": lambda: users.service.password_check(password=PASSPHRASE),
        "plain_local": lambda: services.password_check(password=PASSPHRASE),
        "cached": lambda: users.service.user_get(actor=admin, user_id=target),
        "cached_local": lambda: repository.user_cached(user_id=target),
        "cached_loop": lambda: repository.user_cached(user_id=target),
    }
    # A record written moments ago (the stack just made this admin) holds a
    # tombstone that refuses refills until it expires: keep reading until one fills.
    deadline = time.monotonic() + 3 * repository.TOMBSTONE_SECONDS
    while repository.user_cached(user_id=target) is None:
        if time.monotonic() > deadline:
            raise SystemExit("the user cache is off or not shared: no warm read to measure")
        users.service.user_get(actor=admin, user_id=target)  # fills the cache once it may
        time.sleep(0.2)
    found: dict[str, dict[str, list[float]]] = {
        name: {"p50": [], "client": [], "server": []} for name in work
    }
    warm_up = work["echo"]
    for _ in range(rounds):
        for name, call in work.items():
            crosses = name in SERVED_BY
            found[name]["p50"].append(
                _p50(
                    call,
                    calls,
                    before=warm_up if name in AFTER_ECHO else None,
                    cpu=found[name] if crosses else None,
                    server_pids=pids[SERVED_BY[name]] if crosses else None,
                )
            )
    channel.close()
    return found


def table(found: dict[str, dict[str, list[float]]]) -> str:
    """The report: each call's p50, what a hop adds over the same work done
    locally (absolute and in echoes), and the CPU per call on each side."""
    p50 = {name: statistics.median(values["p50"]) for name, values in found.items()}
    echo = p50["echo"]
    added = {
        "plain": p50["plain"] - p50["plain_local"],
        "cached": p50["cached"] - p50["cached_local"],
    }
    lines = [
        f"{'call':<72} {'p50 ms':>8} {'added ms':>9} {'added / echo':>13} "
        f"{'client CPU us':>14} {'server CPU us':>14}"
    ]
    for name, label in CALLS:
        extra = added.get(name)
        line = f"{label:<72} {p50[name]:8.3f} " + (
            f"{extra:9.3f} {extra / echo:12.2f}x" if extra is not None else f"{'':9} {'':13}"
        )
        if found[name]["client"]:
            client = statistics.median(found[name]["client"])
            server = statistics.median(found[name]["server"])
            line += f" {client:14.0f} {server:14.0f}"
        lines.append(line.rstrip())
    lines.append(
        f"(median of {len(found['echo']['p50'])} rounds; target of the layered issue: a hop "
        "adds <= 1.5x the echo)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000, help="calls per round and kind")
    parser.add_argument(
        "--child", nargs=3, metavar=("ECHO_ADDRESS", "USER_ID", "PIDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    if args.child:
        echo_address, user_id, pids = args.child
        found = child(echo_address, user_id, args.rounds, args.calls, json.loads(pids))
        print(json.dumps(found))
        return 0
    from tests.support.stack import is_mysql_url, live_stack

    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not is_mysql_url(database_url) or not redis_url:
        parser.error("needs DATABASE_URL=mysql://... and REDIS_URL=redis://... (a layered stack)")
    with (
        tempfile.TemporaryDirectory(prefix="arcana-hop-") as logs,
        live_stack(
            database_url,
            redis_url,
            mode="layered",
            rest_workers=1,
            grpc_workers=1,
            database_prefix="arcana_hop",
        ) as stack,
    ):
        controller = stack.tier_env("controller")
        echo_address = f"127.0.0.1:{free_port()}"
        from bench import floor_echo
        from bench.main import echo_reply

        echo = Server(
            "hop floor (bare grpcio echo)",
            [
                PYTHON,
                "-m",
                "bench.floor_echo",
                "--plain",
                f"127.0.0.1:{free_port()}",
                "--tls",
                echo_address,
                "--cert",
                controller["ARCANA_INTERNAL_TLS_CERT"],
                "--key",
                controller["ARCANA_INTERNAL_TLS_KEY"],
                "--ca",
                controller["ARCANA_INTERNAL_TLS_CA"],
                "--reply-bytes",
                str(len(echo_reply())),
            ],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            Path(logs) / "echo.log",
        )
        echo.start()
        try:
            echo.wait_until(log_count(echo, floor_echo.READY, 1))
            pids = {"echo": echo.pids(), "service": stack.tiers["service"][0].pids()}
            env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
            env.update(controller, PYTHONPATH=str(ROOT))
            env.pop("DATABASE_URL", None)  # the controller tier holds no database credentials
            done = subprocess.run(  # noqa: S603  (our own argv)
                [
                    PYTHON,
                    "-m",
                    "bench.hop",
                    "--rounds",
                    str(args.rounds),
                    "--calls",
                    str(args.calls),
                    "--child",
                    echo_address,
                    stack.admin_id,
                    json.dumps(pids),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            echo.stop()
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            return 1
        print(table(json.loads(done.stdout.strip().splitlines()[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
