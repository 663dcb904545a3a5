"""The cache on Redis Sentinel, against real servers: a primary, its replica
and a Sentinel (``redis-server --sentinel``) started by the test on side ports,
each with its own directory, all stopped afterwards. The Django cache is built
by the settings' own function from ``REDIS_SENTINELS`` and friends.

Killing the primary (SIGKILL) must fail open until the Sentinel promotes the
replica, then the cache must follow the new primary by itself: no restart, no
configuration change.
"""

import contextlib
import secrets
import shutil
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.core.cache import cache
from django.test import override_settings

from arcana.core.cache import RETRY_SECONDS, breaker, count_up, throttle_cache
from arcana.core.rediscache import redis_cache
from tests.support.servers import Server
from tests.support.waiting import wait_for

# The side ports these servers may take (never 6379, the machine's Redis).
PORTS = range(24000, 24100)
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
PREFIX = "sentinel-test"


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:  # a failure, not a skip: CI's second pass must run this
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    return binary


def free_ports(count: int) -> list[int]:
    found = []
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"fewer than {count} free ports in {PORTS}")


@dataclass
class Sentinel:
    """A primary and a replica (``password``), watched by one Sentinel
    (``sentinel_password``) under the name ``master``."""

    master: str
    password: str
    sentinel_password: str
    primary: Server
    replica: Server
    sentinel: Server
    ports: dict[str, int]

    def client(self, name: str, db: int = 0) -> redis.Redis:
        password = self.sentinel_password if name == "sentinel" else self.password
        return redis.Redis(port=self.ports[name], db=db, password=password, socket_timeout=2)

    def master_port(self) -> int:
        address = self.client("sentinel").sentinel_get_master_addr_by_name(self.master)
        assert isinstance(address, tuple), address
        return int(address[1])

    def replica_known(self) -> bool:
        """The Sentinel has found the replica, in sync: a failover can promote it."""
        return any(
            info["port"] == self.ports["replica"]
            and info["flags"] == "slave"
            and info["master-link-status"] == "ok"
            for info in self.client("sentinel").sentinel_slaves(self.master)
        )

    def environ(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": f"127.0.0.1:{self.ports['sentinel']}",
            "REDIS_SENTINEL_MASTER": self.master,
            "REDIS_SENTINEL_DB": "3",
            "REDIS_PASSWORD": self.password,
            "REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "CACHE_KEY_PREFIX": PREFIX,
        }


def _pings(client: redis.Redis) -> Callable[[], bool]:
    def ping() -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(client.ping())
        return False

    return ping


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Sentinel]:
    binary = redis_server_binary()
    primary_port, replica_port, sentinel_port = free_ports(3)
    ports = {"primary": primary_port, "replica": replica_port, "sentinel": sentinel_port}
    password, sentinel_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    # Unique per run: django-redis keeps its pools per URL, process-wide.
    master = f"arcana-{secrets.token_hex(4)}"
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    data = ["--requirepass", password, "--masterauth", password]

    def server(name: str, *argv: str) -> Server:
        directory = tmp_path / name
        directory.mkdir()
        return Server(
            name,
            [binary, *argv, "--dir", str(directory)],
            env={},
            log_path=tmp_path / f"{name}.log",
        )

    sentinel_conf = tmp_path / "sentinel.conf"  # the Sentinel rewrites it: its own file
    sentinel_conf.write_text(
        f"sentinel monitor {master} 127.0.0.1 {primary_port} 1\n"
        f"sentinel auth-pass {master} {password}\n"
        f"sentinel down-after-milliseconds {master} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {master} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {master} 1\n"
    )
    running = Sentinel(
        master=master,
        password=password,
        sentinel_password=sentinel_password,
        primary=server("primary", "--port", str(primary_port), *common, *data),
        replica=server(
            "replica",
            *("--port", str(replica_port), *common, *data),
            *("--replicaof", "127.0.0.1", str(primary_port)),
        ),
        sentinel=server(
            "sentinel",
            *(str(sentinel_conf), "--sentinel", "--port", str(sentinel_port)),
            *("--bind", "127.0.0.1", "--requirepass", sentinel_password),
        ),
        ports=ports,
    )
    servers = [running.primary, running.replica, running.sentinel]
    try:
        for each in servers:
            each.start()
        for name, each in zip(ports, servers, strict=True):
            each.wait_until(_pings(running.client(name)), timeout=10)
        running.sentinel.wait_until(running.replica_known, timeout=20)
        yield running
    finally:
        for each in servers:
            each.stop(grace=2)
        breaker.succeeded()  # the breaker is process-wide: leave it closed


def test_the_cache_follows_a_sentinel_failover_and_fails_open_meanwhile(
    sentinel: Sentinel,
) -> None:
    settings = redis_cache(sentinel.environ())
    assert settings is not None
    local = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "s"}
    with override_settings(CACHES={"default": settings, "local": local}):
        cache.set("before", "kept")
        assert cache.get("before") == "kept"
        assert count_up(throttle_cache(), "counter", timeout=60) == 1
        keys = (f"{PREFIX}:1:before", f"{PREFIX}:1:counter")
        assert sentinel.client("primary", db=3).exists(*keys) == 2, "written to the primary's db 3"
        replica = sentinel.client("replica", db=3)
        wait_for(lambda: replica.exists(*keys) == 2, timeout=5)  # replicated before the kill

        sentinel.primary.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        old_port = sentinel.ports["primary"]
        # Until the Sentinel has promoted the replica, the cache fails open:
        # reads miss, counters count locally, nothing is raised.
        during: list[object] = []

        def failed_over() -> bool:
            during.append(cache.get("before"))
            count_up(throttle_cache(), "counter", timeout=60)
            return sentinel.master_port() != old_port

        wait_for(failed_over, timeout=DOWN_AFTER_MS / 1000 + FAILOVER_TIMEOUT_MS / 1000 + 10)
        assert sentinel.master_port() == sentinel.ports["replica"]
        assert None in during, "some read found the primary gone and failed open"

        # The breaker retries every RETRY_SECONDS; the next attempt asks the
        # Sentinel and reaches the promoted replica.
        def cache_works() -> bool:
            cache.set("after", "written")
            return bool(cache.get("after") == "written")

        wait_for(cache_works, timeout=RETRY_SECONDS + 5, interval=0.2)
        assert not breaker.is_down
        assert cache.get("before") == "kept", "written before the kill, replicated, still there"
        assert replica.info("replication")["role"] == "master"
        assert replica.exists(f"{PREFIX}:1:after"), "the write reached the new primary"
        assert count_up(throttle_cache(), "counter", timeout=60) >= 2, "counting on Redis again"
