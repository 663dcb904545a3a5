"""A Redis cache that fails open.

The cache only ever speeds things up (user records, whose source of truth is
the database) or counts requests (rate limits), so losing Redis must not stop
the service. When Redis cannot be reached:

- reads miss and writes are dropped (django-redis ``IGNORE_EXCEPTIONS``);
- the outage is logged once, not once per request, and its end once too;
- Redis is not retried for ``RETRY_SECONDS``, so requests do not each wait
  for a connection timeout while it is down;
- rate limits count in a per-process local-memory cache meanwhile (see
  ``throttle_cache``): still a limit, just per process instead of shared.

Only a reply from Redis ends an outage. Some client calls return without
asking Redis anything: ``close()``, which Django sends every cache at the end
of every request and gRPC call, and ``get_many([])`` and its kin. Counted as
successes, they "recovered" the breaker behind a cut once its retry window
had passed, and the next real call logged the same outage again.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import BaseCache, cache, caches
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis import Redis
from redis.client import Pipeline

# The name log filters know; it did not change when the module moved into arcana.core.
logger = logging.getLogger("arcana.cache")

RETRY_SECONDS = 5.0


class CircuitBreaker:
    """Process-wide view of whether the shared cache is reachable."""

    def __init__(self, retry_seconds: float = RETRY_SECONDS) -> None:
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False

    @property
    def is_down(self) -> bool:
        return self._down

    def allows_attempt(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if not self._down:
                logger.warning(
                    "cache unreachable (%s); serving without it, retrying every %.0f s",
                    error.__class__.__name__,
                    self.retry_seconds,
                )
            self._down = True
            self._down_until = time.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        if self._down:
            with self._lock:
                if self._down:
                    logger.warning("cache reachable again")
                self._down = False


breaker = CircuitBreaker()


class _Replies(threading.local):
    """How many replies Redis has sent to this thread (only the change matters)."""

    count = 0


_replies = _Replies()


class ReplyCountingPipeline(Pipeline):
    def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        response = super().parse_response(connection, command_name, **options)  # type: ignore[no-untyped-call]
        _replies.count += 1
        return response


class ReplyCountingRedis(Redis):
    """The redis-py client, counting the replies it reads (every command's and
    every pipelined one's goes through ``parse_response``), so the breaker can
    tell a call that Redis answered from one the client answered itself."""

    def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        response = super().parse_response(connection, command_name, **options)  # type: ignore[no-untyped-call]
        _replies.count += 1
        return response

    def pipeline(self, transaction: Any = True, shard_hint: Any = None) -> ReplyCountingPipeline:
        return ReplyCountingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _GuardedClient:
    """Wraps the django-redis client so every call passes the breaker."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        return self._guard(attribute)

    @staticmethod
    def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not breaker.allows_attempt():
                raise ConnectionInterrupted(connection=None)
            replies = _replies.count
            try:
                result = method(*args, **kwargs)
            except ConnectionInterrupted as exc:
                breaker.failed(exc.__cause__ or exc)
                raise
            if _replies.count != replies:  # Redis answered (see the module docstring)
                breaker.succeeded()
            return result

        return call


_clients: dict[str, _GuardedClient] = {}
_clients_lock = threading.Lock()


class FailOpenRedisCache(RedisCache):
    """django-redis backend whose client is guarded by the circuit breaker.

    The client (and its connection pool) is shared by every instance of the
    same configuration in the process. Django keeps cache objects per
    execution context, and grpc runs every call in a fresh one, so without
    sharing each gRPC call would build a new Redis client.

    Its redis-py clients count replies (``ReplyCountingRedis``), whatever
    ``REDIS_CLIENT_CLASS`` says: the breaker needs them to see Redis back.
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = {
            **params.get("OPTIONS", {}),
            "IGNORE_EXCEPTIONS": True,
            "REDIS_CLIENT_CLASS": f"{__name__}.ReplyCountingRedis",
        }
        params = {**params, "OPTIONS": options}
        super().__init__(server, params)
        self._client_key = f"{server}|{sorted(params.items(), key=str)!r}"

    @property
    def client(self) -> Any:
        shared = _clients.get(self._client_key)
        if shared is None:
            with _clients_lock:
                shared = _clients.get(self._client_key)
                if shared is None:
                    shared = _GuardedClient(super().client)
                    _clients[self._client_key] = shared
        return shared


def throttle_cache() -> BaseCache:
    """Where rate-limit counters live: the shared cache, or this process's
    memory while the shared cache is down. Counters stay local until another
    cache call finds Redis back: the breaker's periodic retry must not let a
    request through uncounted."""
    return caches["local"] if breaker.is_down else cache


def count_up(cache: BaseCache, key: str, *, timeout: int) -> int:
    """Add one to the counter ``key`` (created for ``timeout`` seconds) and
    return its value. ``add`` then ``incr``, both atomic on Redis. A cache that
    fails open answers nothing (``None``) for the one call that finds it down;
    that attempt counts as the first, rather than failing the request."""
    cache.add(key, 0, timeout=timeout)
    try:
        value = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1
    return int(value) if value is not None else 1
