"""Test settings: SQLite and local-memory cache unless DATABASE_URL / REDIS_URL
(or REDIS_SENTINELS) say otherwise (CI runs the suite a second time on MariaDB + Redis)."""

import secrets

from .base import *  # noqa: F403
from .base import DATABASES, JWT_KEYS, MIDDLEWARE, SHARED_CACHE, SIMPLE_JWT, THROTTLE_RATES, env

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
