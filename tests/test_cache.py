"""The Redis cache fails open: an unreachable Redis costs no errors, no
per-request timeouts and one log line per outage."""

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import caches
from django.test import override_settings

from arcana.core import cache as arcana_cache
from arcana.core.cache import CircuitBreaker, FailOpenRedisCache, ReplyCountingRedis
from arcana.core.rediscache import redis_cache


def dead_redis_url() -> str:
    # A port nobody listens on: bind, read the port, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def fresh_breaker(monkeypatch: pytest.MonkeyPatch) -> CircuitBreaker:
    breaker = CircuitBreaker(retry_seconds=0.2)
    monkeypatch.setattr(arcana_cache, "breaker", breaker)
    return breaker


def make_cache(url: str) -> FailOpenRedisCache:
    return FailOpenRedisCache(
        url, {"OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}
    )


def _answer(connection: socket.socket) -> None:
    """Speak just enough RESP3 for the calls below: HELLO agrees, GET finds
    nothing, MULTI / EXEC queue and confirm, anything else (SET, CLIENT
    SETINFO) is OK."""
    stream = connection.makefile("rb")
    queued = None
    with connection, stream:
        while header := stream.readline():
            args = []
            for _ in range(int(header[1:])):
                length = int(stream.readline()[1:])
                args.append(stream.read(length + 2)[:-2])
            command = args[0].upper()
            if command == b"HELLO":
                reply = b"%1\r\n+proto\r\n:3\r\n"
            elif command == b"MULTI":
                queued, reply = 0, b"+OK\r\n"
            elif command == b"EXEC":
                reply, queued = b"*%d\r\n" % (queued or 0) + b"+OK\r\n" * (queued or 0), None
            elif queued is not None:
                queued, reply = queued + 1, b"+QUEUED\r\n"
            elif command == b"GET":
                reply = b"_\r\n"
            else:
                reply = b"+OK\r\n"
            connection.sendall(reply)


@pytest.fixture
def answering_redis_url() -> Iterator[str]:
    """A server on loopback that answers like Redis (an empty one)."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        with server:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:  # closed: the test is over
                    return
                threading.Thread(target=_answer, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_unreachable_redis_reads_miss_and_writes_are_dropped(
    fresh_breaker: CircuitBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    dead = make_cache(dead_redis_url())
    with caplog.at_level(logging.WARNING, logger="arcana.cache"):
        assert dead.get("k", "fallback") == "fallback"
        assert dead.set("k", "v") is None
        assert dead.add("k", "v") is None
        for _ in range(50):
            dead.get("k")
    assert fresh_breaker.is_down
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1


def test_breaker_skips_redis_while_open(fresh_breaker: CircuitBreaker) -> None:
    dead = make_cache(dead_redis_url())
    dead.get("k")
    started = time.perf_counter()
    for _ in range(200):
        dead.get("k")
    # 200 calls that each waited for a connection would take seconds.
    assert time.perf_counter() - started < 0.5


def test_breaker_logs_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    breaker = CircuitBreaker(retry_seconds=0.0)
    with caplog.at_level(logging.WARNING, logger="arcana.cache"):
        breaker.failed(ConnectionError())
        breaker.failed(ConnectionError())
        assert breaker.allows_attempt()
        breaker.succeeded()
        breaker.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert messages.count("cache reachable again") == 1
    assert not breaker.is_down


def test_calls_that_ask_redis_nothing_do_not_end_an_outage(
    fresh_breaker: CircuitBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    """django-redis answers these itself. Django closes every cache after every
    request (and the gRPC servers after every call): once the retry window had
    passed, that close "recovered" the breaker with Redis still unreachable,
    and the next call logged the same outage a second time."""
    dead = make_cache(dead_redis_url())
    with caplog.at_level(logging.WARNING, logger="arcana.cache"):
        dead.get("k")
        assert fresh_breaker.is_down
        time.sleep(0.25)  # past the retry window
        assert fresh_breaker.allows_attempt()
        dead.close()
        dead.get_many([])
        dead.delete_many([])
        dead.set_many({})
        assert fresh_breaker.is_down
        assert dead.get("k", "fallback") == "fallback"
    messages = [record.getMessage() for record in caplog.records]
    assert sum("unreachable" in message for message in messages) == 1, messages
    assert "cache reachable again" not in messages
    assert fresh_breaker.is_down


@pytest.mark.parametrize(
    "call",
    [lambda c: c.get("k"), lambda c: c.set_many({"a": 1, "b": 2})],
    ids=["command", "pipeline"],
)
def test_a_reply_from_redis_ends_an_outage_once(
    fresh_breaker: CircuitBreaker,
    caplog: pytest.LogCaptureFixture,
    answering_redis_url: str,
    call: Callable[[FailOpenRedisCache], object],
) -> None:
    answering = make_cache(answering_redis_url)
    fresh_breaker.failed(ConnectionError())
    time.sleep(0.25)  # past the retry window
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arcana.cache"):
        answering.close()
        assert fresh_breaker.is_down
        call(answering)
        assert not fresh_breaker.is_down
        call(answering)
    assert [record.getMessage() for record in caplog.records] == ["cache reachable again"]


@pytest.mark.parametrize(
    "environ",
    [
        {"REDIS_URL": "redis://127.0.0.1:6379/3"},
        {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "arcana"},
    ],
    ids=["url", "sentinel"],
)
def test_both_redis_configurations_count_replies(environ: dict[str, str]) -> None:
    """Without reply-counting clients the breaker would never see Redis back."""
    settings = redis_cache(environ)
    assert settings is not None
    built = FailOpenRedisCache(settings["LOCATION"], settings)
    factory = built.client._inner.connection_factory  # no connection is made
    assert factory.redis_client_cls is ReplyCountingRedis


def test_throttle_counts_locally_while_redis_is_down(fresh_breaker: CircuitBreaker) -> None:
    assert arcana_cache.throttle_cache() is not caches["local"]
    fresh_breaker.failed(ConnectionError())
    assert arcana_cache.throttle_cache() is caches["local"]
    time.sleep(0.25)  # past the retry window: still local until Redis answers again
    assert fresh_breaker.allows_attempt()
    assert arcana_cache.throttle_cache() is caches["local"]
    fresh_breaker.succeeded()
    assert arcana_cache.throttle_cache() is not caches["local"]


@pytest.mark.django_db
def test_service_keeps_serving_with_redis_unreachable(fresh_breaker: CircuitBreaker) -> None:
    from rest_framework.test import APIClient

    caches_setting = {
        "default": {
            "BACKEND": "arcana.core.cache.FailOpenRedisCache",
            "LOCATION": dead_redis_url(),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"},
    }
    with override_settings(CACHES=caches_setting):
        client = APIClient()
        registered = client.post(
            "/api/v1/auth/register",
            {
                "name": "Nora",
                "email": "nora@example.com",
                "password": "a long and unusual passphrase 42",
            },
            format="json",
        )
        assert registered.status_code == 201
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {registered.json()['access']}")
        assert client.get("/api/v1/auth/me").status_code == 200
        assert (
            client.patch("/api/v1/auth/me", {"name": "Nora N"}, format="json").json()["name"]
            == "Nora N"
        )
        assert client.get("/api/v1/auth/me").json()["name"] == "Nora N"
    assert fresh_breaker.is_down


def test_instances_of_one_configuration_share_one_client() -> None:
    url = dead_redis_url()
    first, second = make_cache(url), make_cache(url)
    assert first.client is second.client
    assert make_cache(dead_redis_url()).client is not first.client


def test_count_up_counts_and_survives_a_cache_that_fails_open() -> None:
    from django.core.cache import caches

    from arcana.core.cache import count_up

    local = caches["local"]
    local.delete("count-up-test")
    assert [count_up(local, "count-up-test", timeout=60) for _ in range(3)] == [1, 2, 3]

    class Silent:  # what django-redis answers with IGNORE_EXCEPTIONS while Redis is down
        def add(self, *args: object, **kwargs: object) -> None:
            return None

        def incr(self, *args: object, **kwargs: object) -> None:
            return None

    assert count_up(Silent(), "any", timeout=60) == 1  # type: ignore[arg-type]
