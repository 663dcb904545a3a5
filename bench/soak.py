"""``make soak``: the mixed load of ``bench/mixed.py`` for minutes, figures printed.

Run from the project root: ``.venv/bin/python bench/soak.py [--seconds 300]``.
Needs MariaDB: DATABASE_URL (a mysql:// URL; default mysql://root@127.0.0.1:3306/arcana)
names the server, on which the soak makes and then drops a database of its own;
REDIS_URL (default redis://127.0.0.1:6379/13) names the Redis database, in which
only the soak's own keys are touched. Exits 1 when anything was lost or failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.mixed import soak
from tests.support.stack import GENEROUS_RATE, live_stack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=20, help="unmeasured seconds first")
    parser.add_argument("--processes", type=int, default=3, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL") or "mysql://root@127.0.0.1:3306/arcana"
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/13"
    overrides = {
        "LOGIN_LOCKOUT_FAILURES": "1000000",
        "LOGIN_LOCKOUT_ACCOUNT_FAILURES": "1000000",
        "THROTTLE_LOGIN": GENEROUS_RATE,
    }
    with live_stack(
        database_url,
        redis_url,
        rest_workers=args.workers,
        grpc_workers=args.workers,
        env_overrides=overrides,
        database_prefix="arcana_soak",
    ) as stack:
        print(f"soak: the REST server on :{stack.rest_port}, grpcrunserver on {stack.grpc_address}")
        report = soak(
            stack,
            seconds=args.seconds,
            warmup=args.warmup,
            processes=args.processes,
            threads=args.threads,
            progress=lambda line: print(f"soak: {line}", flush=True),
        )
    print(report.render())
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
