"""The shared cache's settings: REDIS_URL or Redis Sentinel, never half of one
(tests/live/test_redis_sentinel.py runs a failover against real servers)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from arcana.core.rediscache import redis_cache
from tests.commands import refusal
from tests.test_settings import run_production, strong

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379,[::1]:26380", "REDIS_SENTINEL_MASTER": "arcana"}


def test_nothing_set_means_no_redis() -> None:
    assert redis_cache({}) is None


def test_a_redis_url_keeps_the_default_client_and_timeouts() -> None:
    cache = redis_cache({"REDIS_URL": "redis://127.0.0.1:6379/2", "REDIS_TIMEOUT": "0.25"})
    assert cache is not None
    assert cache["BACKEND"] == "arcana.core.cache.FailOpenRedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/2"
    assert cache["KEY_PREFIX"] == "arcana"
    assert cache["OPTIONS"] == {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "SOCKET_CONNECT_TIMEOUT": 0.5,
        "SOCKET_TIMEOUT": 0.25,
    }


def test_sentinels_give_django_redis_sentinel_client_on_the_primary_only() -> None:
    cache = redis_cache(
        {
            **SENTINELS,
            "REDIS_SENTINEL_DB": "4",
            "REDIS_PASSWORD": "data-nodes",
            "REDIS_SENTINEL_PASSWORD": "sentinels",
            "REDIS_CONNECT_TIMEOUT": "0.3",
        }
    )
    assert cache is not None
    assert cache["BACKEND"] == "arcana.core.cache.FailOpenRedisCache"
    # One URL: no second one, which SentinelClient would send reads to (a replica).
    assert cache["LOCATION"] == ["redis://arcana/4?is_master=1"]
    options = cache["OPTIONS"]
    assert options["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
    assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert options["CONNECTION_POOL_CLASS"] == "redis.sentinel.SentinelConnectionPool"
    assert options["SENTINELS"] == [("10.0.0.1", 26379), ("::1", 26380)]
    assert options["PASSWORD"] == "data-nodes"
    assert options["SOCKET_CONNECT_TIMEOUT"] == 0.3
    assert options["SOCKET_TIMEOUT"] == 0.5
    assert options["SENTINEL_KWARGS"] == {
        "socket_connect_timeout": 0.3,
        "socket_timeout": 0.5,
        "password": "sentinels",
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"REDIS_URL": "redis://h:6379/0", **SENTINELS},
            "REDIS_URL and REDIS_SENTINELS are mutually exclusive: set one of them.",
        ),
        ({"REDIS_SENTINELS": "h:26379"}, "REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS."),
        (
            {"REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not.",
        ),
        ({"REDIS_SENTINEL_DB": "1"}, "REDIS_SENTINEL_DB is set but REDIS_SENTINELS is not."),
        (
            {"REDIS_URL": "redis://h/0", "REDIS_PASSWORD": "p"},
            "REDIS_PASSWORD is set but REDIS_SENTINELS is not.",
        ),
        (
            {"REDIS_SENTINEL_PASSWORD": "p"},
            "REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not.",
        ),
        (
            {**SENTINELS, "REDIS_SENTINELS": "h:26379,h"},
            "REDIS_SENTINELS must be host:port pairs separated by commas, not 'h'.",
        ),
        (
            {**SENTINELS, "REDIS_SENTINELS": "h:0"},
            "REDIS_SENTINELS must be host:port pairs separated by commas, not 'h:0'.",
        ),
        (
            {**SENTINELS, "REDIS_SENTINEL_MASTER": "MyMaster"},
            "REDIS_SENTINEL_MASTER must be lower-case letters, digits",
        ),
        (
            {**SENTINELS, "REDIS_SENTINEL_DB": "two"},
            "REDIS_SENTINEL_DB must be a database number, not 'two'.",
        ),
        (
            {**SENTINELS, "REDIS_TIMEOUT": "soon"},
            "REDIS_TIMEOUT must be a number of seconds, not 'soon'.",
        ),
        (
            {"REDIS_URL": "redis://h/0", "REDIS_CONNECT_TIMEOUT": "0"},
            "REDIS_CONNECT_TIMEOUT must be more than 0 seconds, not '0'.",
        ),
    ],
)
def test_half_or_double_configurations_are_refused_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        redis_cache(environ)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_production_starts_on_sentinels_instead_of_a_redis_url() -> None:
    code = (
        "from django.conf import settings; "
        "print(settings.CACHES['default']['OPTIONS']['CLIENT_CLASS'], settings.USER_CACHE)"
    )
    keys = {"DJANGO_SECRET_KEY": strong(), "JWT_SIGNING_KEY": strong(), "REDIS_URL": ""}
    result = run_production({**keys, **SENTINELS}, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.split() == ["django_redis.client.SentinelClient", "True"]


def test_production_refuses_a_half_sentinel_configuration_in_one_line() -> None:
    keys = {"DJANGO_SECRET_KEY": strong(), "JWT_SIGNING_KEY": strong(), "REDIS_URL": ""}
    result = run_production({**keys, "REDIS_SENTINELS": "h:26379"}, "check")
    assert refusal(result) == "REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS."
