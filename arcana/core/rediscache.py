"""The shared (Redis) cache's settings: one Redis URL, or Redis Sentinel.

``REDIS_URL`` names one Redis server. ``REDIS_SENTINELS`` instead names the
Sentinels that watch a primary and its replicas (``REDIS_SENTINEL_MASTER``,
the name the Sentinels know it by): django-redis asks them where the primary
is on every new connection, so after a failover the cache follows the
promoted replica without a restart. Both go through ``FailOpenRedisCache``
with the same timeouts, so a primary that dies fails open like any outage
until the Sentinels have promoted another.

Every call goes to the primary, never to a replica: lockout and rate-limit
counters and the user cache's invalidations must be read where they were
written (a replica lags, however little). The replicas are there to take over.

This module imports nothing from Django's cache machinery: settings call it.
"""

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

SENTINEL_ONLY = ("REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_DB", "REDIS_SENTINEL_PASSWORD")
# django-redis reads the master's name from a URL's host, which is lower-cased.
_MASTER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}.") from None
    if not value > 0:
        raise ImproperlyConfigured(f"{name} must be more than 0 seconds, not {raw!r}.")
    return value


def parse_sentinels(raw: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (an IPv6 host in brackets) as (host, port) pairs."""
    sentinels = []
    for item in (part.strip() for part in raw.split(",")):
        host, _, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS must be host:port pairs separated by commas, not {item!r}."
            )
        sentinels.append((host, int(port)))
    return sentinels


def _sentinel_options(
    environ: Mapping[str, str], timeouts: dict[str, float]
) -> tuple[str, dict[str, Any]]:
    """LOCATION and OPTIONS for django-redis's Sentinel client."""
    sentinels = parse_sentinels(environ["REDIS_SENTINELS"])
    master = environ.get("REDIS_SENTINEL_MASTER", "")
    if not master:
        raise ImproperlyConfigured("REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS.")
    if not _MASTER_NAME.fullmatch(master):
        raise ImproperlyConfigured(
            "REDIS_SENTINEL_MASTER must be lower-case letters, digits, '.', '_' or '-' "
            f"(django-redis reads it from a URL's host), not {master!r}."
        )
    db = environ.get("REDIS_SENTINEL_DB", "") or "0"
    if not db.isdigit():
        raise ImproperlyConfigured(f"REDIS_SENTINEL_DB must be a database number, not {db!r}.")
    # The Sentinels' own connections: the same timeouts, their own password.
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": timeouts["SOCKET_CONNECT_TIMEOUT"],
        "socket_timeout": timeouts["SOCKET_TIMEOUT"],
    }
    if environ.get("REDIS_SENTINEL_PASSWORD"):
        sentinel_kwargs["password"] = environ["REDIS_SENTINEL_PASSWORD"]
    options: dict[str, Any] = {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "CONNECTION_POOL_CLASS": "redis.sentinel.SentinelConnectionPool",
        "SENTINELS": sentinels,
        "SENTINEL_KWARGS": sentinel_kwargs,
    }
    if environ.get("REDIS_PASSWORD"):  # the primary's and the replicas'
        options["PASSWORD"] = environ["REDIS_PASSWORD"]
    # One URL, the primary's (SentinelClient given a single string would add
    # a second, for reads from replicas).
    return f"redis://{master}/{db}?is_master=1", options


def redis_cache(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The ``default`` cache for ``REDIS_URL`` or ``REDIS_SENTINELS``; None
    when neither is set. A half Sentinel configuration, or both ways at
    once, is refused with the variable to fix."""
    url = environ.get("REDIS_URL", "")
    sentinels = environ.get("REDIS_SENTINELS", "")
    if url and sentinels:
        raise ImproperlyConfigured(
            "REDIS_URL and REDIS_SENTINELS are mutually exclusive: set one of them."
        )
    if not sentinels:
        for name in (*SENTINEL_ONLY, "REDIS_PASSWORD"):
            if environ.get(name):
                raise ImproperlyConfigured(f"{name} is set but REDIS_SENTINELS is not.")
    if not url and not sentinels:
        return None
    timeouts = {
        "SOCKET_CONNECT_TIMEOUT": _float(environ, "REDIS_CONNECT_TIMEOUT", 0.5),
        "SOCKET_TIMEOUT": _float(environ, "REDIS_TIMEOUT", 0.5),
    }
    if sentinels:
        location, options = _sentinel_options(environ, timeouts)
    else:
        location, options = url, {"CLIENT_CLASS": "django_redis.client.DefaultClient"}
    return {
        "BACKEND": "arcana.core.cache.FailOpenRedisCache",
        "LOCATION": [location] if sentinels else location,
        "KEY_PREFIX": environ.get("CACHE_KEY_PREFIX", "") or "arcana",
        "OPTIONS": {**options, **timeouts},
    }
