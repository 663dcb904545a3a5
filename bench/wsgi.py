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

import multiprocessing
import sys
from contextlib import ExitStack

from bench import BENCH_GUNICORN_CONF, sidebyside
from bench.observe import measure
from tests.support.servers import ROOT, free_port, http_ok
from tests.support.stack import (
    PASSWORD,
    create_admin,
    granian_server,
    manage,
    rest_login,
    rest_server,
    server_env,
    wait_rest_ready,
)

OUT = ROOT / "bench" / "out" / "wsgi.json"
SERVERS = ("gunicorn", "granian")


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
            env,
            ports["granian"],
            directory / "granian.log",
            workers=options.workers,
            threads=options.threads,
        )
        granian.start()
        stack.callback(granian.stop)
        granian.wait_until(http_ok(ports["granian"], "/healthz"), 60)
        body = rest_login(ports["gunicorn"], "bench@example.com", PASSWORD)
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
