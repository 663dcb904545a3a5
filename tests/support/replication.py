"""A private MariaDB primary and a replica of it, for the read-replica tests
(``tests/live/test_replicas.py``) and benchmark (``bench/replicas.py``).

Two ``mariadbd`` processes on ports of their own (``tests.support.servers.free_port``,
so ``ARCANA_TEST_PORTS`` applies), each with its own data directory under
``directory``; the replica follows the primary's binary log by GTID. Nothing
is shared with the machine's MariaDB, and everything stops when the block
ends::

    with replicated_pair(Path(tmp)) as pair:
        pair.primary.url("arcana")            # mysql://root@127.0.0.1:PORT/arcana
        pair.replica.sql("SHOW REPLICA STATUS")
        pair.wait_caught_up()
        pair.replica.kill(); pair.replica.start()

``root`` has no password: the servers listen on 127.0.0.1 only and live as
long as the block.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import Server, free_port

SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", os.environ.get("PATH", "")])
# Fast and small, for throwaway data: no fsync, a small redo log and buffer pool.
THROWAWAY_INNODB = [
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
]


def _binary(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        # Fail, never skip: a machine without MariaDB cannot run what CI must.
        raise RuntimeError(f"{name} not found (Debian: apt-get install mariadb-server)")
    return found


def _as_root() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root otherwise


def install_datadir(datadir: Path) -> None:
    """A fresh data directory whose ``root`` logs in without a password."""
    result = subprocess.run(
        [
            _binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_as_root(),
            *THROWAWAY_INNODB,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout}{result.stderr}")


def connect(port: int, *, database: str | None = None, timeout: int = 5) -> Any:
    mysqldb: Any = importlib.import_module("MySQLdb")  # mysqlclient ships no type stubs
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "user": "root",
        "passwd": "",
        "connect_timeout": timeout,
        "charset": "utf8mb4",
    }
    if database:
        options["db"] = database
    conn = mysqldb.connect(**options)
    conn.autocommit(True)
    return conn


@dataclass
class MariaDB:
    """One private ``mariadbd``."""

    name: str
    directory: Path
    server_id: int
    port: int = field(default_factory=free_port)
    extra: Sequence[str] = ()
    server: Server | None = None

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60) -> None:
        argv = [
            _binary("mariadbd"),
            "--no-defaults",
            *_as_root(),
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.directory / 'mariadbd.sock'}",
            f"--pid-file={self.directory / 'mariadbd.pid'}",
            f"--server-id={self.server_id}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            *THROWAWAY_INNODB,
            *self.extra,
        ]
        starts = len(list(self.directory.glob("mariadbd*.log")))
        log = self.directory / f"mariadbd{'-' + str(starts) if starts else ''}.log"
        self.server = Server(f"mariadbd {self.name} (:{self.port})", argv, os.environ, log)
        self.server.start()
        self.server.wait_until(self._answers, timeout)

    def _answers(self) -> bool:
        try:
            connect(self.port, timeout=1).close()
        except Exception:  # any failure means "not yet"
            return False
        return True

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one statement, as dicts by column name."""
        conn = connect(self.port)
        try:
            cursor = conn.cursor()
            cursor.execute(statement, tuple(params))
            if cursor.description is None:
                return []
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def kill(self) -> None:
        """SIGKILL: as a crashed or vanished server, no goodbye to its clients."""
        if self.server is not None and self.server.process is not None:
            self.server.process.kill()
            self.server.process.wait(timeout=10)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=20)


@dataclass
class ReplicatedPair:
    primary: MariaDB
    replica: MariaDB

    def replication_status(self) -> dict[str, Any]:
        rows = self.replica.sql("SHOW REPLICA STATUS")
        return rows[0] if rows else {}

    def start_replication(self) -> None:
        self.replica.sql("STOP REPLICA")
        self.replica.sql(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='root', "
            "MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            (self.primary.port,),
        )
        self.replica.sql("START REPLICA")

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Until the replica has applied everything the primary has written."""
        position = self.primary.sql("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]
        deadline = time.monotonic() + timeout
        while True:
            waited = self.replica.sql("SELECT MASTER_GTID_WAIT(%s, %s) AS result", (position, 1))[
                0
            ]["result"]
            if waited == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"replica not at {position} after {timeout:.0f} s: {self.replication_status()}"
                )


@contextmanager
def replicated_pair(directory: Path, extra: Sequence[str] = ()) -> Iterator[ReplicatedPair]:
    """A primary (binary log, row format) and a read-only replica following it;
    ``extra``: more ``mariadbd`` options for both."""
    template = directory / "template"
    install_datadir(template)  # once; both servers start from a copy
    primary = MariaDB(
        "primary",
        directory / "primary",
        server_id=1,
        extra=[f"--log-bin={directory / 'primary' / 'binlog'}", "--binlog-format=ROW", *extra],
    )
    replica = MariaDB(
        "replica",
        directory / "replica",
        server_id=2,
        extra=[
            f"--relay-log={directory / 'replica' / 'relay'}",
            "--read-only",  # as replicas run; root may still write (a marker row)
            *extra,
        ],
    )
    with contextlib.ExitStack() as stack:
        for server in (primary, replica):
            server.directory.mkdir(parents=True)
            shutil.copytree(template, server.datadir, symlinks=True)
            stack.callback(server.stop)
            server.start()
        pair = ReplicatedPair(primary=primary, replica=replica)
        pair.start_replication()
        pair.wait_caught_up()
        yield pair
