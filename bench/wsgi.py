"""``make bench-wsgi``: granian (the REST server as deployed) and gunicorn gthread, side by side.

The same Django application (``arcana.wsgi``, production settings) on one
database and cache, served by two WSGI servers with the same number of worker
processes and threads per worker:

- **granian** (a Rust HTTP server with a WSGI interface), as deployed:
  ``python -m arcana.wsgi_server`` (``REST_THREADS`` blocking threads per
  worker, access log off, the production default);
- **gunicorn** gthread, the server granian replaced (``bench/gunicorn_conf.py``:
  the same workers and threads, access log off).

Client processes load each in turn with get-by-id (``GET /api/v1/users/<id>``
with a bearer token, keep-alive connections, closed loop) at each concurrency,
in interleaved rounds (gunicorn/granian, then granian/gunicorn, ...), so a
noisy machine slows both alike; the figure is the median over rounds of each
round's throughput ratio granian/gunicorn. Throughput only: production's
choice also rests on the reliability tests (graceful shutdown under load, slow
clients behind the gateway, tests/live), which this does not run.

Run from the project root: ``.venv/bin/python -m bench.wsgi [--rounds 6]
[--seconds 3] [--concurrency 1,8] [--workers 2] [--threads 4]
[--database-url mysql://...] [--redis-url redis://...]``: with a MySQL URL,
on a new database of its own on that server. Writes
``bench/out/wsgi.json``.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from bench import BENCH_GUNICORN_CONF, sidebyside
from bench.observe import measure
from tests.support.servers import PYTHON, ROOT, Server, free_port, http_ok, log_count
from tests.support.stack import (
    PASSWORD,
    create_admin,
    manage,
    rest_login,
    rest_server,
    server_env,
    wait_rest_ready,
)

OUT = ROOT / "bench" / "out" / "wsgi.json"
SERVERS = ("gunicorn", "granian")


def gunicorn_server(
    env: Mapping[str, str], port: int, log_path: Path, *, workers: int, threads: int
) -> Server:
    """gunicorn gthread serving ``arcana.wsgi`` on 127.0.0.1:``port``."""
    server_env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    argv = [PYTHON, "-m", "gunicorn", "arcana.wsgi", "-c", str(BENCH_GUNICORN_CONF)]
    return Server("REST (gunicorn arcana.wsgi)", argv, server_env, log_path)


def main(argv: list[str] | None = None) -> int:
    parser = sidebyside.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--redis-url", default="")
    options = sidebyside.parse(parser, argv)
    if options.threads < 1:
        parser.error("--threads must be positive")

    with ExitStack() as stack:
        directory, database_url = sidebyside.workspace(stack, options, parser, "arcana-wsgi")
        env = server_env(database_url, options.redis_url, workers=options.workers)
        env["REST_THREADS"] = str(options.threads)
        manage(env, "migrate", "--no-input", "-v", "0")
        create_admin(env, email="bench@example.com", name="Bench", password=PASSWORD)
        ports = {name: free_port() for name in SERVERS}
        granian = rest_server(env, ports["granian"], directory / "granian.log")
        granian.start()
        stack.callback(granian.stop)
        wait_rest_ready(granian, ports["granian"], options.workers)
        gunicorn = gunicorn_server(
            env,
            ports["gunicorn"],
            directory / "gunicorn.log",
            workers=options.workers,
            threads=options.threads,
        )
        gunicorn.start()
        stack.callback(gunicorn.stop)
        gunicorn.wait_until(log_count(gunicorn, "Booting worker", options.workers), 60)
        gunicorn.wait_until(http_ok(ports["gunicorn"], "/healthz"), 60)
        body = rest_login(ports["granian"], "bench@example.com", PASSWORD)
        token, path = str(body["access"]), f"/api/v1/users/{body['user']['id']}"
        pool = stack.enter_context(
            multiprocessing.get_context("fork").Pool(max(options.concurrency))
        )
        levels = sidebyside.interleaved(
            SERVERS,
            options.concurrency,
            options.rounds,
            options.seconds,
            lambda name, clients, seconds: measure(
                pool, clients, ports[name], path, token, seconds
            ),
        )

    sidebyside.write(
        OUT,
        levels,
        options,
        f"monolithic REST get-by-id, {options.workers} workers x {options.threads} threads each",
        SERVERS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
