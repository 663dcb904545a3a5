"""``make observe``: a layered stack, a real Prometheus scraping every tier, a
short load, and the dashboard's panels drawn from Prometheus's answers into
``docs/observe.png`` (``bench.dashboard``).

Needs MariaDB: ``DATABASE_URL=mysql://user@host:3306/any`` (the stack makes a
database of its own there and drops it) and optionally ``REDIS_URL``. Run from
the project root: ``.venv/bin/python -m bench.observe_run [--seconds 40]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.dashboard import draw
from tests.support.prometheus import running_prometheus, scraped
from tests.support.servers import ROOT
from tests.support.stack import GENEROUS_RATE, LiveStack, live_stack

PICTURE = ROOT / "docs" / "observe.png"


def _load(stack: LiveStack, until: float, index: int) -> None:
    """One client's mix: reads by id, a login now and then, a wrong password and
    an unknown user more rarely (the error panels need something to show)."""
    count = 0
    while time.monotonic() < until:
        count += 1
        if count % 10 == 0:
            stack.rest_json(
                "POST",
                "/api/v1/auth/login",
                {"email": stack.admin_email, "password": stack.password},
            )
        elif count % 37 == 0:
            stack.rest_json(
                "POST", "/api/v1/auth/login", {"email": stack.admin_email, "password": "wrong" * 3}
            )
        elif count % 23 == 0:
            stack.rest_json(
                "GET", "/api/v1/users/00000000-0000-0000-0000-000000000000", token=stack.admin_token
            )
        else:
            stack.rest_json("GET", f"/api/v1/users/{stack.admin_id}", token=stack.admin_token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--output", type=Path, default=PICTURE)
    options = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("mysql://"):
        print("make observe needs DATABASE_URL=mysql://... (MariaDB)", file=sys.stderr)
        return 2
    unthrottled = {f"THROTTLE_{scope}": GENEROUS_RATE for scope in ("LOGIN", "PASSWORD")}
    with tempfile.TemporaryDirectory(prefix="arcana-observe-") as scratch:
        directory = Path(scratch)
        with (
            live_stack(
                database_url,
                os.environ.get("REDIS_URL", ""),
                mode="layered",
                metrics=True,
                log_dir=directory / "logs",
                env_overrides={
                    **unthrottled,
                    "LOGIN_LOCKOUT_FAILURES": "1000000",
                    "LOGIN_LOCKOUT_ACCOUNT_FAILURES": "1000000",
                },
                database_prefix=os.environ.get("OBSERVE_DATABASE_PREFIX", "arcana_observe"),
            ) as stack,
            running_prometheus(stack.metrics_targets, directory / "prometheus") as port,
        ):
            scraped(port, sorted(stack.metrics_targets))
            start = time.time()
            until = time.monotonic() + options.seconds
            clients = [
                threading.Thread(target=_load, args=(stack, until, index))
                for index in range(options.clients)
            ]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            time.sleep(3)  # the last scrapes
            draw(port, start, time.time(), options.output)
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
