"""``make bench-aio``: grpcio's synchronous server against ``grpc.aio``, side by side.

Issue 13 asks whether the public gRPC server should move to ``grpc.aio``. The
question is about the server machinery, so this measures it on the gRPC floor
(``bench.floor_grpc``: bare grpcio, the same indexed ``SELECT`` by id, no
interceptors), served three ways with the same processes and threads:

- ``sync``: ``grpc.server`` with a thread pool, what the service runs;
- ``aio-pool``: ``grpc.aio.server`` running the same synchronous handler in a
  thread pool, which is how the service's synchronous servicers and
  interceptors (django-grpc-framework) would run on it;
- ``aio-inline``: an ``async`` handler making the query on the event loop's
  thread, one call at a time per process (the service's handlers would all
  have to become ``async`` for this). Django keeps database connections per
  asyncio context, so each call opens (and here closes) a connection of its
  own: that, not the event loop, is what this row pays.

Client processes (closed loop, one channel each) load each server in turn in
interleaved rounds; the figure is the median over rounds of each round's
throughput ratio against ``sync``.

Run from the project root: ``.venv/bin/python -m bench.aio [--rounds 6]
[--seconds 3] [--concurrency 1,8] [--workers 2] [--max-workers 10]
[--database-url mysql://...]``: with a MySQL URL, on a new database of its
own on that server. Writes ``bench/out/aio.json``.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any

import grpc

from bench import floor_grpc, sidebyside
from tests.support.servers import PYTHON, ROOT, Server, free_port
from tests.support.stack import (
    PASSWORD,
    create_admin,
    manage,
    server_env,
)

OUT = ROOT / "bench" / "out" / "aio.json"


def _load(job: tuple[int, bytes, float]) -> tuple[int, float]:
    """One closed-loop client: calls for ``seconds``; (calls, seconds spent in them)."""
    port, request, seconds = job
    try:
        return _calls(port, request, seconds)
    except grpc.RpcError as exc:  # not picklable: the pool hands back a plain error
        raise RuntimeError(f"port {port}: {exc.code()} {exc.details()}") from None


def _calls(port: int, request: bytes, seconds: float) -> tuple[int, float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(floor_grpc.METHOD, None, None)
        call(request, timeout=10)  # connect outside the window
        done, busy = 0, 0.0
        end = time.perf_counter() + seconds
        while (start := time.perf_counter()) < end:
            call(request, timeout=10)
            busy += time.perf_counter() - start
            done += 1
    return done, busy


def measure(pool: Any, clients: int, port: int, request: bytes, seconds: float) -> dict[str, float]:
    results = pool.map(_load, [(port, request, seconds)] * clients)
    done = sum(count for count, _ in results)
    busy = sum(spent for _, spent in results)
    return {"rps": done / seconds, "mean_ms": 1000 * busy / max(done, 1)}


def _user_id(env: dict[str, str], email: str) -> str:
    found = subprocess.run(  # noqa: S603  (our own argv, no shell)
        [
            PYTHON,
            "manage.py",
            "shell",
            "-c",
            f"from users.models import User; print(User.objects.get(email={email!r}).pk)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip().splitlines()[-1]


def wait_serving(server: Server, port: int, request: bytes, timeout: float) -> None:
    def answers() -> bool:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                channel.unary_unary(floor_grpc.METHOD, None, None)(request, timeout=1)
        except grpc.RpcError:
            return False
        return True

    server.wait_until(answers, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = sidebyside.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--max-workers", type=int, default=10, help="threads per process")
    options = sidebyside.parse(parser, argv)
    if options.max_workers < 1:
        parser.error("--max-workers must be positive")

    with ExitStack() as stack:
        directory, database_url = sidebyside.workspace(stack, options, parser, "arcana-aio")
        env = server_env(database_url, "", workers=options.workers)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        manage(env, "migrate", "--no-input", "-v", "0")
        create_admin(env, email="bench@example.com", name="Bench", password=PASSWORD)
        request = _user_id(env, "bench@example.com").encode()
        floor_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "bench.floor_settings",
            "PYTHONPATH": str(ROOT),
        }
        ports: dict[str, int] = {}
        for name in floor_grpc.SERVERS:
            ports[name] = port = free_port()
            command = [PYTHON, "-m", "bench.floor_grpc", f"127.0.0.1:{port}", "--server", name]
            command += [
                "--workers",
                str(options.workers),
                "--max-workers",
                str(options.max_workers),
            ]
            server = Server(f"gRPC floor ({name})", command, floor_env, directory / f"{name}.log")
            server.start()
            stack.callback(server.stop)
            wait_serving(server, port, request, 60)
        pool = stack.enter_context(
            multiprocessing.get_context("spawn").Pool(max(options.concurrency))
        )
        levels = sidebyside.interleaved(
            floor_grpc.SERVERS,
            options.concurrency,
            options.rounds,
            options.seconds,
            lambda name, clients, seconds: measure(pool, clients, ports[name], request, seconds),
        )

    sidebyside.write(
        OUT,
        levels,
        options,
        f"gRPC floor get-by-id, {options.workers} processes x {options.max_workers} threads",
        floor_grpc.SERVERS,
        "calls/s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
