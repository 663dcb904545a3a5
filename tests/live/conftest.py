"""Tests against live servers: the REST server (``arcana.wsgi_server``) and
``grpcrunserver --workers N`` as deployed, on MariaDB (+ Redis), started by
``tests.support.stack.live_stack``.

They run only when ``DATABASE_URL`` is a ``mysql://`` URL (CI's second pass);
otherwise they are deselected -- not skipped, since a skip fails the session.
Each module gets its own database (``arcana_live_<random>`` on the server
``DATABASE_URL`` points to, dropped afterwards) and its own servers. The cache
is the Redis of ``REDIS_URL`` but database ``LIVE_REDIS_DB`` (13), never the
one the in-process tests flush, and only keys under the stack's own prefix.
"""

import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.secret_scan import find_secret
from tests.support.stack import GENEROUS_RATE, LiveStack, is_mysql_url, live_stack

LIVE_DIR = Path(__file__).resolve().parent
# Races and load must not be cut short by the limits meant for attackers.
UNTHROTTLED = {
    "THROTTLE_LOGIN": GENEROUS_RATE,
    "THROTTLE_REGISTER": GENEROUS_RATE,
    "THROTTLE_REFRESH": GENEROUS_RATE,
    "THROTTLE_PASSWORD": GENEROUS_RATE,
    "THROTTLE_EMAIL_CHANGE": GENEROUS_RATE,
    "LOGIN_LOCKOUT_FAILURES": "1000000",
    "LOGIN_LOCKOUT_ACCOUNT_FAILURES": "1000000",
}


def live_database_url() -> str:
    return os.environ.get("DATABASE_URL", "")


def live_redis_url() -> str:
    """REDIS_URL's server with a database number of our own (empty: local memory)."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{os.environ.get('LIVE_REDIS_DB', '13')}"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if LIVE_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.live)  # whatever a new module forgets
    if is_mysql_url(live_database_url()):
        return
    # Only this directory's: other suites (tests/faults) decide for their own.
    live = [item for item in items if LIVE_DIR in Path(str(item.path)).parents]
    if not live:
        return
    config.hook.pytest_deselected(items=live)
    items[:] = [item for item in items if item not in live]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"live: deselected {len(live)} live tests: DATABASE_URL is not a mysql:// URL "
        "(they start the REST server and grpcrunserver on MariaDB; CI's second pass runs them)"
    )
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)


def server_log_problems(stack: LiveStack) -> list[str]:
    """Secrets (passwords, hashes, tokens) or tracebacks in the servers' logs."""
    problems = []
    for log in sorted(stack.log_dir.glob("*.log")):
        for number, text in enumerate(log.read_text(errors="replace").splitlines(), 1):
            found = "the admin password" if stack.password in text else find_secret(text)
            if found:
                problems.append(f"{log.name}:{number}: {found}")
            if "Traceback" in text:
                problems.append(f"{log.name}:{number}: a traceback")
    return problems


@contextmanager
def checked_stack(database_url: str, log_dir: Path, **options: Any) -> Iterator[LiveStack]:
    """``live_stack`` (2 REST workers, 2 gRPC processes, no throttles unless
    ``options`` say otherwise) whose logs must hold no secret and no traceback."""
    options = {"rest_workers": 2, "grpc_workers": 2, "env_overrides": UNTHROTTLED, **options}
    with live_stack(
        database_url, live_redis_url(), password=DEFAULT_PASSWORD, log_dir=log_dir, **options
    ) as running:
        yield running
        problems = server_log_problems(running)
    assert not problems, "server logs:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The REST server (2 workers) + grpcrunserver --workers 2 on a database of this module's."""
    with checked_stack(live_database_url(), tmp_path_factory.mktemp("live-logs")) as running:
        yield running
