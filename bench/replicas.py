"""What the read-replica router costs on the hot path: get-by-id, side by side.

    .venv/bin/python -m bench.replicas [--requests 3000] [--redis redis://127.0.0.1:6379/4]

Starts a private MariaDB primary and replica (``tests.support.replication``), migrates a
database on the primary, then times, in a child process running production
settings with ``DATABASE_REPLICA_URLS`` set, simulated requests (request
started / finished signals around a ``call_context`` with a new request id and
an acting user, as REST and gRPC run them), the variants interleaved in random
order round after round so that the machine's load falls on all alike:

- ``request, no query``: the simulated request alone;
- ``orm, primary, no router``: the query a cache miss of ``users.repository.user_get``
  runs, with ``.using("default")``, which Django sends without asking any
  router: what get-by-id costs without replicas;
- ``orm, replica (router)``: the same query routed: the router looks up the
  caller's pin (one Redis GET), reads the health verdict, and the replica answers;
- ``orm, pinned (router)``: the same for a caller who wrote a moment ago (pin
  found: the primary answers). Minus ``orm, primary, no router``: the router's cost;
- ``router decision``: ``db_for_read`` alone, first read of a request;
- ``router, later reads``: ``db_for_read`` again in the same request (memoised);
- ``user_get, cached``: ``users.repository.user_get`` answered by the Redis user
  cache, the usual case, which the router never sees.

Prints microseconds per request (median, 99th percentile). Both servers are on
this machine, so the replica is as near as the primary: the figures are the
router's cost, not a network's.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.replication import replicated_pair
from tests.support.servers import PYTHON, ROOT
from tests.support.stack import (
    manage,
    mysql_database_create,
    redis_delete_prefix,
    server_env,
    with_database,
)

Figures = dict[str, dict[str, float]]


def _interleaved(variants: dict[str, Callable[[], Any]], rounds: int) -> Figures:
    """Each variant once per round, in a new random order each round, so that
    drift in the machine's load falls on all of them alike."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds + 100):  # the first 100 rounds warm up
        random.shuffle(names)
        for name in names:
            started = time.perf_counter()
            variants[name]()
            elapsed = (time.perf_counter() - started) * 1e6
            if round_ >= 100:
                samples[name].append(elapsed)
    return {
        name: {
            "median": statistics.median(taken),
            "p99": sorted(taken)[int(len(taken) * 0.99) - 1],
        }
        for name, taken in samples.items()
    }


def child(requests: int) -> None:
    """Runs in a child process with replicas configured; prints JSON."""
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.signals import request_finished, request_started
    from django.db import router

    from arcana.core.context import call_context
    from arcana.db import routers
    from users import repository
    from users.models import User

    user = User.objects.create_user(
        email=f"bench-{secrets.token_hex(4)}@example.com", name="Bench", password=None
    )
    pk, reader, writer = user.pk, str(user.pk), str(uuid.uuid4())
    cache.set(routers.PIN_KEY.format(f"user:{writer}"), True, timeout=3600)
    repository.user_get(user_id=reader)  # in the user cache from now on

    def in_request(body: Callable[[], Any], actor: str = reader) -> Callable[[], Any]:
        def run() -> Any:
            request_started.send(sender=None)
            try:
                with call_context(request=uuid.uuid4().hex, actor=actor):
                    return body()
            finally:
                request_finished.send(sender=None)

        return run

    def get(alias: str | None = None) -> Callable[[], Any]:
        def run() -> Any:
            users = User.objects.get_queryset()
            return (users.using(alias) if alias else users).with_roles().get(pk=pk)._state.db

        return run

    assert in_request(get())() == "replica1"
    assert in_request(get(), actor=writer)() == "default"

    variants = {
        "request, no query": in_request(lambda: None),
        "orm, primary, no router": in_request(get("default")),
        "orm, replica (router)": in_request(get()),
        "orm, pinned (router)": in_request(get(), actor=writer),
        "router decision": in_request(lambda: router.db_for_read(User)),
        "user_get, cached": in_request(lambda: repository.user_get(user_id=reader)),
    }
    results = _interleaved(variants, requests)
    # Later reads of one request: no I/O at all, so no need to interleave.
    with call_context(request="one-request", actor=reader):
        router.db_for_read(User)
        results |= _interleaved({"router, later reads": lambda: router.db_for_read(User)}, requests)
    print(json.dumps(results))


def _run_child(env: dict[str, str], requests: int) -> Figures:
    result = subprocess.run(  # noqa: S603  (our own argv, no shell)
        [PYTHON, "-m", "bench.replicas", "--child", "--requests", str(requests)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stdout}{result.stderr}")
    parsed: Figures = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests)
        return
    prefix = f"bench-replicas-{secrets.token_hex(3)}"
    with (
        tempfile.TemporaryDirectory(prefix="arcana-replicas-") as directory,
        replicated_pair(Path(directory)) as pair,
    ):
        primary = mysql_database_create(pair.primary.url("arcana"), "bench_replicas")
        env = server_env(
            primary,
            args.redis,
            overrides={"CACHE_KEY_PREFIX": prefix, "USER_CACHE": "true", "LOG_LEVEL": "ERROR"},
        )
        manage(env, "migrate", "--noinput")
        pair.wait_caught_up()
        replica = with_database(pair.replica.url("arcana"), primary.rpartition("/")[2])
        try:
            results = _run_child({**env, "DATABASE_REPLICA_URLS": replica}, args.requests)
        finally:
            redis_delete_prefix(args.redis, prefix)
    print(f"get-by-id per request, {args.requests} requests (microseconds)")
    print(f"{'':24} {'median':>8} {'p99':>8}")
    for name, figures in results.items():
        print(f"{name:24} {figures['median']:8.0f} {figures['p99']:8.0f}")


if __name__ == "__main__":
    main()
