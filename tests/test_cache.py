"""The Redis cache fails open: an unreachable Redis costs no errors, no
per-request timeouts and one log line per outage."""

import logging
import socket
import time

import pytest
from django.core.cache import caches
from django.test import override_settings

from arcana.core import cache as arcana_cache
from arcana.core.cache import CircuitBreaker, FailOpenRedisCache


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
