"""A database that stops answering must fail requests, not hang them.

Regression for a defect the live fault suite found: with only a connect
timeout, a blackholed MariaDB (connections open, nothing comes back) held every
request until the WSGI server's worker timeout (no response at all), and froze the
gRPC health watcher with health still SERVING. Read/write timeouts bound it;
test_live_faults.py's blackhole case checks the whole path against real servers.
"""

import re
from pathlib import Path

import pytest

from arcana.settings.base import _tune_database

ROOT = Path(__file__).resolve().parent.parent.parent
GATEWAYS = (
    ROOT / "docker" / "nginx" / "arcana.conf.template",
    ROOT / "docker" / "k8s" / "overlays" / "microservices" / "gateway" / "nginx.conf",
)


def mysql(**options: object) -> dict[str, object]:
    return _tune_database({"ENGINE": "django.db.backends.mysql", "OPTIONS": dict(options)})


def test_mysql_connections_time_out_on_reads_and_writes() -> None:
    options = mysql()["OPTIONS"]
    assert isinstance(options, dict)
    assert options["read_timeout"] == 5
    assert options["write_timeout"] == 5
    assert options["connect_timeout"] == 5


@pytest.mark.parametrize("gateway", GATEWAYS, ids=lambda path: path.parent.name)
def test_worst_case_stays_inside_the_gateways_read_timeout(gateway: Path) -> None:
    """A request on a stale connection may wait for a ping or query (read) and
    then a reconnect (connect) before it fails; it must answer 503 well before
    the gateway gives up on the REST server (a 504 without the service's own
    error body). The REST server has no worker timeout of its own: these
    bound a request."""
    options = mysql()["OPTIONS"]
    assert isinstance(options, dict)
    worst = 2 * options["read_timeout"] + options["connect_timeout"]
    found = re.search(r"^\s*proxy_read_timeout (\d+)s;", gateway.read_text(), re.MULTILINE)
    assert found, f"{gateway} sets no proxy_read_timeout"
    assert worst <= int(found.group(1)) / 2


def test_timeouts_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_READ_TIMEOUT", "2")
    monkeypatch.setenv("DATABASE_WRITE_TIMEOUT", "3")
    options = mysql()["OPTIONS"]
    assert isinstance(options, dict)
    assert (options["read_timeout"], options["write_timeout"]) == (2, 3)


def test_explicit_options_win() -> None:
    options = mysql(read_timeout=30)["OPTIONS"]
    assert isinstance(options, dict)
    assert options["read_timeout"] == 30


def test_sqlite_gets_no_mysql_options() -> None:
    db = _tune_database({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"})
    assert "read_timeout" not in db.get("OPTIONS", {})
