"""``make bench-wsgi``: gunicorn (gthread, as deployed) against granian, side by side.

The same Django application (``arcana.wsgi``, production settings) on one
database and cache, served by two WSGI servers with the same number of worker
processes and threads per worker:

- **gunicorn**: ``docker/gunicorn.conf.py`` as deployed (gthread), access log
  off (``bench/gunicorn_conf.py``);
- **granian** (a Rust HTTP server with a WSGI interface): ``--interface wsgi``,
  ``--blocking-threads`` = gunicorn's threads, access log off.

Client processes load each in turn with get-by-id (``GET /api/v1/users/<id>``
with a bearer token, keep-alive connections, closed loop) at each concurrency,
in interleaved rounds (gunicorn/granian, then granian/gunicorn, ...), so a
noisy machine slows both alike; the figure is the median over rounds of each
round's throughput ratio granian/gunicorn. Throughput only: which server
production runs also depends on the reliability tests (graceful shutdown under
load, slow clients behind the gateway), which this does not run.

Run from the project root: ``.venv/bin/python -m bench.wsgi [--rounds 6]
[--seconds 3] [--concurrency 1,8] [--workers 2] [--threads 4]
[--database-url mysql://...] [--redis-url redis://...]``: with a MySQL URL,
on a new database of its own on that server. Writes
``bench/out/wsgi.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.observe import measure
from bench.servers import ROOT, Server, free_port, http_ok
from bench.stack import (
    BENCH_GUNICORN_CONF,
    PASSWORD,
    create_admin,
    is_mysql_url,
    manage,
    mysql_database_create,
    mysql_database_drop,
    rest_login,
    rest_server,
    server_env,
    wait_rest_ready,
)

OUT = ROOT / "bench" / "out" / "wsgi.json"
SERVERS = ("gunicorn", "granian")


def granian_server(env: dict[str, str], port: int, log: Path, workers: int, threads: int) -> Server:
    granian = shutil.which("granian", path=str(Path(sys.executable).parent))
    if granian is None:
        raise SystemExit("granian is not installed: scripts/bootstrap.sh --dev installs it")
    command = [
        granian,
        "--interface",
        "wsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        "--no-access-log",
        "--log-level",
        "warning",
        "arcana.wsgi:application",
    ]
    return Server("REST (granian arcana.wsgi)", command, {**env, "PYTHONPATH": str(ROOT)}, log)


def _concurrency(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be at least 1")
    return levels


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| concurrency | gunicorn req/s | gunicorn mean ms | granian req/s | granian mean ms "
        "| granian/gunicorn (median of rounds) |",
        "|---|---|---|---|---|---|",
    ]
    for level, found in summary["levels"].items():
        lines.append(
            f"| {level} | {found['gunicorn_rps']:.0f} | {found['gunicorn_mean_ms']:.2f} "
            f"| {found['granian_rps']:.0f} | {found['granian_mean_ms']:.2f} "
            f"| {found['ratio_median']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=_concurrency, default=[1, 8])
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--database-url", default="", help="default: a SQLite file of the run")
    parser.add_argument("--redis-url", default="")
    options = parser.parse_args(argv)
    if options.rounds < 1 or options.seconds <= 0 or options.workers < 1 or options.threads < 1:
        parser.error("--rounds, --seconds, --workers and --threads must be positive")

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arcana-wsgi-")))
        database_url = f"sqlite:///{directory / 'db.sqlite3'}"
        if options.database_url:
            if not is_mysql_url(options.database_url):
                parser.error("--database-url must be a mysql:// URL (default: SQLite)")
            # A database of the run's own beside the one named, dropped after.
            database_url = mysql_database_create(options.database_url, prefix="arcana_wsgi")
            stack.callback(mysql_database_drop, database_url)
        env = server_env(database_url, options.redis_url, workers=options.workers)
        env["GUNICORN_THREADS"] = str(options.threads)
        manage(env, "migrate", "--no-input", "-v", "0")
        create_admin(env, email="bench@example.com", name="Bench", password=PASSWORD)
        ports = {name: free_port() for name in SERVERS}
        gunicorn = rest_server(
            env,
            ports["gunicorn"],
            directory / "gunicorn.log",
            workers=options.workers,
            config=BENCH_GUNICORN_CONF,
            name="REST (gunicorn arcana.wsgi)",
        )
        gunicorn.start()
        stack.callback(gunicorn.stop)
        wait_rest_ready(gunicorn, ports["gunicorn"], options.workers)
        granian = granian_server(
            env, ports["granian"], directory / "granian.log", options.workers, options.threads
        )
        granian.start()
        stack.callback(granian.stop)
        granian.wait_until(http_ok(ports["granian"], "/healthz"), 60)
        body = rest_login(ports["gunicorn"], "bench@example.com", PASSWORD)
        token, path = str(body["access"]), f"/api/v1/users/{body['user']['id']}"
        pool = stack.enter_context(
            multiprocessing.get_context("fork").Pool(max(options.concurrency))
        )
        levels: dict[str, dict[str, float]] = {}
        for level in options.concurrency:
            for port in ports.values():  # warm both: caches, connections, code paths
                measure(pool, level, port, path, token, 1.0)
            rounds: list[dict[str, dict[str, float]]] = []
            for number in range(options.rounds):
                order = SERVERS if number % 2 == 0 else tuple(reversed(SERVERS))
                result = {
                    name: measure(pool, level, ports[name], path, token, options.seconds)
                    for name in order
                }
                rounds.append(result)
                print(
                    f"concurrency {level}, round {number + 1}: "
                    + ", ".join(f"{name} {result[name]['rps']:6.0f} req/s" for name in SERVERS),
                    flush=True,
                )
            ratios = [r["granian"]["rps"] / r["gunicorn"]["rps"] for r in rounds]
            found: dict[str, float] = {"ratio_median": statistics.median(ratios)}
            for name in SERVERS:
                found[f"{name}_rps"] = statistics.median(r[name]["rps"] for r in rounds)
                found[f"{name}_mean_ms"] = statistics.median(r[name]["mean_ms"] for r in rounds)
            levels[str(level)] = found

    summary: dict[str, Any] = {"levels": levels, "options": vars(options)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2))
    print(
        f"\nmonolithic REST get-by-id, {options.workers} workers x {options.threads} threads "
        f"each, median of {options.rounds} interleaved rounds:\n{table(summary)}\n"
        f"written to {OUT.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
