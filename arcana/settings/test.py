"""Test settings: SQLite and local-memory cache unless DATABASE_URL / REDIS_URL
(or REDIS_SENTINELS) say otherwise (CI runs the suite a second time on MariaDB + Redis)."""

import os
import secrets
from urllib.parse import urlsplit, urlunsplit


def _worker_redis_url(url: str, worker: str) -> str:
    """pytest-xdist worker ``gwN``'s own Redis database: N below the URL's
    (15, 14, ... for CI's db 15, modulo Redis's 16). Tests clear the cache
    (FLUSHDB) and count throttles, so two processes must not share one."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    number = (base - int(worker.removeprefix("gw"))) % 16
    return urlunsplit(parts._replace(path=f"/{number}"))


if (_worker := os.environ.get("PYTEST_XDIST_WORKER")) and os.environ.get("REDIS_URL"):
    # In the environment, not only here: the servers tests start inherit it.
    os.environ["REDIS_URL"] = _worker_redis_url(os.environ["REDIS_URL"], _worker)

from .base import *  # noqa: F403, E402 - REDIS_URL is settled first
from .base import (  # noqa: E402
    DATABASES,
    JWT_KEYS,
    MIDDLEWARE,
    SHARED_CACHE,
    SIMPLE_JWT,
    THROTTLE_RATES,
    env,
)

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# The name of the database the test run creates (Django's default: "test_" and
# DATABASE_URL's name), for a shared server where each run keeps to its own names.
if _test_name := env.str("DATABASE_TEST_NAME", default=""):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = _test_name

# Fresh random keys per test process: nothing to leak, nothing committed.
# (A test that starts server processes passes its keys down via the environment.)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=secrets.token_urlsafe(48))
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default=secrets.token_urlsafe(48))
if JWT_KEYS is None:  # HS256; else base set the key pair
    SIMPLE_JWT["SIGNING_KEY"] = JWT_SIGNING_KEY

# The algorithm stays Argon2; only its cost drops so the suite runs fast.
PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]

# One process: local memory is as shared as it gets, and keeps tests apart.
# (tests/test_default_stack.py runs the no-configuration default: two processes,
# file-based counters.) The user cache is on, as with Redis.
if not SHARED_CACHE:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l"},
    }
USER_CACHE = True

# Throttling is exercised by tests that lower these on purpose.
THROTTLE_RATES = {scope: "10000/min" for scope in THROTTLE_RATES}

# Queued mail is sent at once, in the enqueueing thread; the mail tests
# (tests/mail) use the database queue and a real worker instead.
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

# No collectstatic before tests: plain storage, so templates resolve static URLs.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
