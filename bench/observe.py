"""``make bench-observe``: what metrics and request logs cost, side by side.

Two monolithic REST servers (``arcana.wsgi_server``, as deployed, access log
off) on one database: one with ``METRICS_ENABLED`` and ``REQUEST_LOG`` on (its
JSON lines go to its log file, as to a container's stdout), one with both off.
The same client processes load each in turn with get-by-id
(``GET /api/v1/users/<id>``, keep-alive connections, closed loop), in
interleaved rounds (on/off, then off/on, ...), so that a noisy, shared machine
slows both alike; the figure is the median over rounds of each round's
throughput ratio on/off (target: at least 0.9). Tracing stays off in both
(``OTEL_TRACES_EXPORTER`` unset): what its hooks cost per call then is timed
apart, in nanoseconds.

Run from the project root: ``.venv/bin/python -m bench.observe [--rounds 8]
[--seconds 4] [--clients 4] [--workers 1] [--database-url mysql://...]
[--redis-url redis://...]``. Writes ``bench/out/observe.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import timeit
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.support.servers import ROOT, free_port
from tests.support.stack import (
    PASSWORD,
    create_admin,
    manage,
    rest_login,
    rest_server,
    server_env,
    wait_rest_ready,
)

OUT = ROOT / "bench" / "out" / "observe.json"
ON = {"METRICS_ENABLED": "true", "REQUEST_LOG": "true", "LOG_FORMAT": "json"}
OFF = {"METRICS_ENABLED": "false", "REQUEST_LOG": "false", "LOG_FORMAT": "json"}
TARGET = 0.9


def _load(args: tuple[int, str, str, float]) -> tuple[int, float]:
    """One client: requests answered 200 in ``seconds``, and their summed latency."""
    port, path, token, seconds = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    done, busy = 0, 0.0
    ends = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        if started >= ends:
            break
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        busy += time.perf_counter() - started
        done += 1
    conn.close()
    return done, busy


def measure(
    pool: Any, clients: int, port: int, path: str, token: str, seconds: float
) -> dict[str, float]:
    results = pool.map(_load, [(port, path, token, seconds)] * clients)
    done = sum(count for count, _ in results)
    busy = sum(spent for _, spent in results)
    return {"rps": done / seconds, "mean_ms": 1000 * busy / max(done, 1)}


# Frames that are observability's own: libraries it calls (anywhere in a
# sample's stack) and its own code (the sample's innermost project frame).
PROFILE_LIBRARIES = {
    "request log": ("structlog", "arcana/observe/logs.py"),
    "metrics": ("prometheus_client", "arcana/core/metrics.py"),
}
PROJECT_FRAMES = ("arcana/", "django/", "rest_framework", "users/", "authn/")
OWN_CODE = ("arcana/observe/", "arcana/core/metrics.py", "arcana/core/tracing.py")


def _share_of(stack: str) -> str | None:
    for part, markers in PROFILE_LIBRARIES.items():
        if any(marker in stack for marker in markers):
            return part
    for frame in reversed(stack.split(";")):
        if any(marker in frame for marker in PROJECT_FRAMES):
            return "own code" if any(marker in frame for marker in OWN_CODE) else None
    return None


def profiled(server: Any, load: Any) -> dict[str, float]:
    """py-spy samples of ``server`` (its workers too) while ``load()`` runs:
    the share of its request-handling samples spent in each part of
    observability (``PROFILE_LIBRARIES``, and its own code)."""
    import subprocess

    output = OUT.with_name("observe-on.txt")
    spy = subprocess.Popen(  # noqa: S603  (our own argv)
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(server.process.pid),
            "--subprocesses",
            # Only the thread holding the GIL: CPU spent, not a thread that
            # left the GIL for a write(2) and waits to get it back.
            "--gil",
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    load()
    spy.send_signal(2)  # SIGINT: py-spy writes what it has
    spy.wait(timeout=30)
    totals = {part: 0 for part in (*PROFILE_LIBRARIES, "own code")}
    samples = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "django" not in stack:
            continue  # idle threads: the server's I/O loop, the thread pool's waits
        samples += int(count)
        part = _share_of(stack)
        if part is not None:
            totals[part] += int(count)
    shares = {part: total / max(samples, 1) for part, total in totals.items()}
    shares["all of it"] = sum(shares.values())
    shares["samples"] = samples
    return shares


def tracing_off_ns() -> dict[str, float]:
    """What the tracing hooks on a request's path cost while tracing is off."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcana.settings.test")
    django.setup()
    from arcana.core import tracing

    metadata: list[tuple[str, str]] = []

    def hop() -> None:
        tracing.enabled()
        with tracing.client_span("users.repo.user_get", metadata):
            pass
        with tracing.server_span("users.repo.user_get", ()):
            pass

    def execute(sql: str, params: Any, many: bool, context: Any) -> None:
        return None

    statement = tracing.statement_spans("sqlite")
    runs = 200_000
    return {
        "trace_id_lookup": timeit.timeit(tracing.current_trace_id, number=runs) / runs * 1e9,
        "hop_spans": timeit.timeit(hop, number=runs) / runs * 1e9,
        "statement_span": timeit.timeit(
            lambda: statement(execute, "SELECT 1", None, False, None), number=runs
        )
        / runs
        * 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="REST workers per server")
    parser.add_argument("--database-url", default="", help="default: a SQLite file of the run")
    parser.add_argument("--redis-url", default="")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also sample the 'on' server with py-spy during one more round and print the "
        "share of its samples spent in metrics and logging",
    )
    options = parser.parse_args(argv)

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arcana-obs-")))
        database_url = options.database_url or f"sqlite:///{directory / 'db.sqlite3'}"
        env = server_env(database_url, options.redis_url, workers=options.workers)
        manage(env, "migrate", "--no-input", "-v", "0")
        create_admin(env, email="bench@example.com", name="Bench", password=PASSWORD)
        ports, servers = {}, {}
        for name, overrides in (("on", ON), ("off", OFF)):
            port = free_port()
            server = rest_server(
                {**env, **overrides},
                port,
                directory / f"rest-{name}.log",
                workers=options.workers,
                name=f"REST, observability {name}",
            )
            server.start()
            stack.callback(server.stop)
            wait_rest_ready(server, port, options.workers)
            ports[name], servers[name] = port, server
        body = rest_login(ports["off"], "bench@example.com", PASSWORD)
        token, path = str(body["access"]), f"/api/v1/users/{body['user']['id']}"
        pool = stack.enter_context(multiprocessing.get_context("fork").Pool(options.clients))
        for port in ports.values():  # warm both: caches, connections, code paths
            measure(pool, options.clients, port, path, token, 1.0)
        rounds: list[dict[str, dict[str, float]]] = []
        for number in range(options.rounds):
            order = ("on", "off") if number % 2 == 0 else ("off", "on")
            result = {
                name: measure(pool, options.clients, ports[name], path, token, options.seconds)
                for name in order
            }
            rounds.append(result)
            ratio = result["on"]["rps"] / result["off"]["rps"]
            print(
                f"round {number + 1}: on {result['on']['rps']:7.0f} req/s, "
                f"off {result['off']['rps']:7.0f} req/s, ratio {ratio:.3f}",
                flush=True,
            )
        shares = (
            profiled(
                servers["on"],
                lambda: measure(pool, options.clients, ports["on"], path, token, 15.0),
            )
            if options.profile
            else None
        )
        with (directory / "rest-on.log").open() as log:
            logged = sum('"event": "request"' in line for line in log)

    ratios = [result["on"]["rps"] / result["off"]["rps"] for result in rounds]
    summary: dict[str, Any] = {
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "on_rps_median": statistics.median(result["on"]["rps"] for result in rounds),
        "off_rps_median": statistics.median(result["off"]["rps"] for result in rounds),
        "on_mean_ms_median": statistics.median(result["on"]["mean_ms"] for result in rounds),
        "off_mean_ms_median": statistics.median(result["off"]["mean_ms"] for result in rounds),
        "request_lines_logged": logged,
        "tracing_off_ns": tracing_off_ns(),
        "profile_shares": shares,
        "options": vars(options),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2))
    verdict = "meets" if summary["ratio_median"] >= TARGET else "MISSES"
    print(
        f"\nmetrics + request logs on / off, monolithic REST get-by-id: "
        f"{summary['ratio_median']:.3f}x (median of {len(ratios)} rounds; {verdict} "
        f"the {TARGET}x target)\n"
        f"  on  {summary['on_rps_median']:.0f} req/s, {summary['on_mean_ms_median']:.2f} ms\n"
        f"  off {summary['off_rps_median']:.0f} req/s, {summary['off_mean_ms_median']:.2f} ms\n"
        f"  tracing off, per call: "
        + ", ".join(f"{key} {value:.0f} ns" for key, value in summary["tracing_off_ns"].items())
        + f"\n  written to {OUT.relative_to(ROOT)}"
    )
    if shares:
        print(
            "  py-spy, share of the 'on' server's samples: "
            + ", ".join(
                f"{value:.0f} samples" if key == "samples" else f"{key} {value:.1%}"
                for key, value in shares.items()
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
