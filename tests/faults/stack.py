"""The deployed service, live, with a fault-injection proxy in front of MariaDB
and one in front of Redis.

The REST server (``arcana.wsgi_server``, ``arcana.wsgi``, 2 workers) and
``grpcrunserver --workers 2`` start as deployed, from tests/support/stack.py's
``live_stack``: the servers reach MariaDB and Redis through the proxies, while
its setup (migrate, createsuperuser) and cleanup go direct, so a fault never
slows those down. They use a database of their own (created, migrated and
dropped there) and Redis db 12 under a key prefix of their own; the shared
servers are never reconfigured.
"""

from __future__ import annotations

import http.client
import importlib
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc import Channel, RpcError, StatusCode, insecure_channel

from tests.support.proxy import TcpProxy
from tests.support.servers import Server
from tests.support.stack import GENEROUS_RATE, live_stack

REDIS_DB = 12  # never 15: the in-process suite flushes that one
WORKERS = 2
PASSWORD = "quiet heron lantern meadow 4821"
# Low enough that a burst from one address is throttled even counted per process.
THROTTLE_LOGIN_RATE = 3
HEALTH_INTERVAL = 0.5
DB_TIMEOUT = 2


def redis_client(host: str, port: int) -> Any:
    redis: Any = importlib.import_module("redis")
    return redis.Redis(host=host, port=port, db=REDIS_DB, socket_timeout=5)


@dataclass
class Stack:
    rest: Server
    grpc: Server
    rest_port: int
    grpc_address: str
    db_proxy: TcpProxy
    redis_proxy: TcpProxy
    redis: Any  # a direct client of the real Redis, db 12
    key_prefix: str
    admin_email: str
    admin_id: str
    admin_token: str

    # --- REST ---------------------------------------------------------------------

    def http(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        client_address: str | None = None,
        timeout: float = 30,
    ) -> Reply:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if client_address:
            # NUM_PROXIES=1: the throttle keys on the address the proxy reports.
            headers["X-Forwarded-For"] = client_address
        conn = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=timeout)
        started = time.monotonic()
        try:
            conn.request(
                method, path, body=json.dumps(body) if body is not None else None, headers=headers
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return Reply(
            status=response.status,
            content_type=response.getheader("Content-Type", ""),
            raw=raw,
            seconds=time.monotonic() - started,
        )

    def login(self, *, client_address: str, timeout: float = 30) -> Reply:
        return self.http(
            "POST",
            "/api/v1/auth/login",
            {"email": self.admin_email, "password": PASSWORD},
            client_address=client_address,
            timeout=timeout,
        )

    # --- gRPC ---------------------------------------------------------------------

    def rpc(self, call: Callable[[Channel], Any]) -> tuple[StatusCode, float]:
        """One call on a fresh channel (so calls spread over the server processes),
        with its status code and how long it took."""
        started = time.monotonic()
        with insecure_channel(self.grpc_address) as channel:
            try:
                call(channel)
                code = StatusCode.OK
            except RpcError as error:
                code = error.code()
        return code, time.monotonic() - started

    # --- logs -----------------------------------------------------------------------

    def log_mark(self) -> dict[str, int]:
        """Where each log ends now, so a test can read only what came after."""
        return {server.name: len(server.log_text()) for server in (self.rest, self.grpc)}

    def log_lines(self, marker: str, since: dict[str, int] | None = None) -> dict[str, list[str]]:
        """Lines containing ``marker``, by server ("rest", "grpc")."""
        found = {}
        for key, server in (("rest", self.rest), ("grpc", self.grpc)):
            text = server.log_text()[(since or {}).get(server.name, 0) :]
            found[key] = [line for line in text.splitlines() if marker in line]
        return found

    def redis_keys(self) -> list[bytes]:
        return list(self.redis.scan_iter(match=f"{self.key_prefix}:*", count=1000))

    def all_pids(self) -> set[int]:
        return set(self.rest.pids()) | set(self.grpc.pids())


@dataclass
class Reply:
    status: int
    content_type: str
    raw: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.raw)


def pid_of(line: str) -> int:
    """The process id in a line of the project's log: a JSON object's ``pid``
    (``LOG_FORMAT=json``, production's), or the plain format's fourth field
    (``%(asctime)s %(levelname)s %(name)s %(process)d %(message)s``)."""
    if line.startswith("{"):
        try:
            pid = json.loads(line).get("pid")
        except ValueError:
            pid = None
        if isinstance(pid, int):
            return pid
        raise AssertionError(f"not a project log line: {line!r}")
    match = re.match(r"\S+ \S+ \S+ \S+ (\d+) ", line)
    if match is None:
        raise AssertionError(f"not a project log line: {line!r}")
    return int(match.group(1))


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's (credentials kept)."""
    parts = urllib.parse.urlsplit(url)
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# What the servers run with beyond live_stack's production-like defaults.
FAULT_ENV = {
    "NUM_PROXIES": "1",
    "THROTTLE_LOGIN": f"{THROTTLE_LOGIN_RATE}/min",
    "GRPC_HEALTH_INTERVAL": str(HEALTH_INTERVAL),
    # Shorter than deployed (5 s each) so a blackholed database costs the
    # suite seconds, not minutes; the mechanism under test is the same.
    "DATABASE_CONNECT_TIMEOUT": str(DB_TIMEOUT),
    "DATABASE_READ_TIMEOUT": str(DB_TIMEOUT),
    "DATABASE_WRITE_TIMEOUT": str(DB_TIMEOUT),
}


@contextmanager
def fault_stack(database_url: str, redis_url: str, logs: Path) -> Iterator[Stack]:
    """tests.support.stack.live_stack with the servers behind the proxies (see the module
    docstring)."""
    mysql = urllib.parse.urlsplit(database_url)
    redis_parsed = urllib.parse.urlsplit(redis_url)
    redis_host, redis_port = redis_parsed.hostname or "127.0.0.1", redis_parsed.port or 6379

    with ExitStack() as stack:
        db_proxy = stack.enter_context(
            TcpProxy((mysql.hostname or "127.0.0.1", mysql.port or 3306))
        )
        redis_proxy = stack.enter_context(TcpProxy((redis_host, redis_port)))
        redis = redis_client(redis_host, redis_port)
        stack.callback(redis.close)
        live = stack.enter_context(
            live_stack(
                database_url,
                f"redis://{redis_host}:{redis_port}/{REDIS_DB}",
                server_database_url=through(database_url, db_proxy.port),
                server_redis_url=f"redis://127.0.0.1:{redis_proxy.port}/{REDIS_DB}",
                rest_workers=WORKERS,
                grpc_workers=WORKERS,
                env_overrides=FAULT_ENV,
                # Every gRPC call comes from 127.0.0.1 (one throttle bucket); the
                # throttle under fault is exercised over REST, where the address varies.
                grpc_env_overrides={"THROTTLE_LOGIN": GENEROUS_RATE},
                password=PASSWORD,
                log_dir=logs,
                database_prefix="arcana_faults",
                stop_grace=5,
            )
        )
        yield Stack(
            rest=live.rest,
            grpc=live.grpc,
            rest_port=live.rest_port,
            grpc_address=live.grpc_address,
            db_proxy=db_proxy,
            redis_proxy=redis_proxy,
            redis=redis,
            key_prefix=live.env["CACHE_KEY_PREFIX"],
            admin_email=live.admin_email,
            admin_id=live.admin_id,
            admin_token=live.admin_token,
        )
