"""Settings shared by every environment.

Everything that differs between machines comes from the environment (or a
``.env`` file beside ``manage.py``) through django-environ. ``.env.example``
lists every variable.
"""

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from arcana.core.jwtkeys import load_jwt_keys
from arcana.core.rediscache import redis_cache
from arcana.modes import Deployment, Mode, Service, Tier, deployment_from_env
from arcana.observe.logs import checked_format as checked_log_format
from arcana.observe.logs import formatter as structured_formatter

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- core -------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Before django.contrib.auth: its createsuperuser applies the API's email
    # and password rules, and the first app listed wins a command's name.
    "users",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Before django_grpc_framework: its grpcrunserver is broken on Django 5 and
    # the project's own command must win (arcana/core/grpc_compat.py).
    "arcana.grpc",
    "django_grpc_framework",
    # Metrics, request logs and traces (arcana/observe).
    "arcana.observe",
    "authn",
    # The mail queue: tasks stored in the database, run by `manage.py db_worker`.
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "arcana.middleware.RequestIdMiddleware",
    # Inside the request id (its log line names it), outside everything else
    # (it times and counts what the rest answers).
    "arcana.observe.middleware.ObserveMiddleware",
    # Answers CORS preflights before anything else looks at them (CORS below).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "arcana.middleware.JsonNotFoundMiddleware",
    # Serves the admin's and the API docs' static files from any WSGI server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "arcana.middleware.BodySizeLimitMiddleware",
    "arcana.middleware.DatabaseUnavailableMiddleware",
    # Django's session, auth and messages middleware, which only the admin's
    # (and the docs') browser sessions need, skipped by /api/v1/ requests
    # (arcana.middleware.BrowserOnly). CSRF stays Django's own, for every
    # request: DRF's views are exempt, and check --deploy looks for it by name.
    "arcana.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "arcana.middleware.AuthenticationMiddleware",
    "arcana.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "arcana.urls"
WSGI_APPLICATION = "arcana.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- deployment mode ----------------------------------------------------------
# ARCANA_MODE (monolithic | layered), ARCANA_TIER and the peer addresses
# (arcana/modes.py); anything missing or unknown stops the process here.

ARCANA_DEPLOYMENT: Deployment = deployment_from_env(os.environ)
# Mutual TLS between tiers (arcana/core/internal.py): PEM paths of this
# process's certificate chain and key and of the CA that signs every tier's
# certificate (servers require a client certificate from it; clients check the
# server's). All three, or none with ARCANA_INTERNAL_INSECURE=true (plaintext).
ARCANA_INTERNAL_TLS_CERT: str = env.str("ARCANA_INTERNAL_TLS_CERT", default="")
ARCANA_INTERNAL_TLS_KEY: str = env.str("ARCANA_INTERNAL_TLS_KEY", default="")
ARCANA_INTERNAL_TLS_CA: str = env.str("ARCANA_INTERNAL_TLS_CA", default="")

# --- database ---------------------------------------------------------------
# SQLite by default; DATABASE_URL=mysql://user:pass@host:3306/name for MySQL or
# MariaDB (through mysqlclient).


def _tune_database(db: dict[str, Any]) -> dict[str, Any]:
    """Persistent, health-checked connections; utf8mb4 and strict mode on MySQL."""
    db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    db["CONN_HEALTH_CHECKS"] = True
    if db["ENGINE"] == "django.db.backends.mysql":
        options = db.setdefault("OPTIONS", {})
        options.setdefault("charset", "utf8mb4")
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
        # Without these a database that stops answering (a partition, not a refused
        # connection) blocks a request forever: the REST worker's thread is never
        # freed (the server has no worker timeout) and the gRPC health watcher
        # stalls with health still SERVING. With them the request gets a 503 after
        # at most ~2 reads + 1 connect (a stale connection's ping or query, then
        # the reconnect): 15 s by default, well inside the gateway's 30 s read
        # timeout. This service's queries take milliseconds.
        options.setdefault("read_timeout", env.int("DATABASE_READ_TIMEOUT", default=5))
        options.setdefault("write_timeout", env.int("DATABASE_WRITE_TIMEOUT", default=5))
        db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    elif db["ENGINE"] == "django.db.backends.sqlite3":
        # make run's processes (REST, gRPC and the mail worker) share one file.
        # A deferred transaction that reads, then writes, fails at once with
        # "database is locked" while another holds the write lock (a 503);
        # IMMEDIATE takes the lock at BEGIN and waits up to the timeout.
        options = db.setdefault("OPTIONS", {})
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", env.int("DATABASE_SQLITE_TIMEOUT", default=20))
    return db


if ARCANA_DEPLOYMENT.holds_database:
    DATABASES = {
        "default": _tune_database(
            env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
        ),
    }
else:
    # The controller and service tiers reach the data through the repository
    # tier: any ORM use left in them raises (arcana/db/refuse), and they are
    # given no credentials to leak.
    if env.str("DATABASE_URL", default=""):
        raise ImproperlyConfigured(
            f"DATABASE_URL must not be set for the {ARCANA_DEPLOYMENT.tier} tier: "
            "only the repository tier holds the database credentials."
        )
    DATABASES = {"default": {"ENGINE": "arcana.db.refuse", "NAME": ""}}

# Microservices mode: each service's database holds its own app's tables, and
# the ORM refuses the other service's models (arcana/db/ownership.py).
_OWNERSHIP_ROUTERS: list[str] = (
    ["arcana.db.ownership.ServiceDataRouter"] if ARCANA_DEPLOYMENT.service is not None else []
)
if ARCANA_DEPLOYMENT.service is not None and ARCANA_DEPLOYMENT.service is not Service.USERS:
    # The mail queue's tables live with the users' data (users/tasks.py), and
    # django_tasks_db's migration 0019 (RenameIndexIfExists) introspects its
    # table without asking the router, so on MySQL it fails on a database the
    # router kept the table out of. Here the app has no migrations to run.
    MIGRATION_MODULES = {"django_tasks_database": None}  # django_tasks_db's app label

# --- read replicas ------------------------------------------------------------
# DATABASE_REPLICA_URLS=mysql://...@replica1:3306/arcana,mysql://...@replica2:3306/arcana:
# reads of users and roles go to a replica that is up and at most
# DATABASE_REPLICA_MAX_LAG_SECONDS behind; writes, transactions, token and
# session state, credential checks and a writer's reads for
# DATABASE_REPLICA_PIN_SECONDS after their write go to the primary
# (arcana/db/routers.py says why and what the window is).

DATABASE_REPLICA_URLS: list[str] = [
    url.strip() for url in env.list("DATABASE_REPLICA_URLS", default=[]) if url.strip()
]
DATABASE_REPLICA_PIN_SECONDS = env.float("DATABASE_REPLICA_PIN_SECONDS", default=5.0)
# Whole seconds, as replicas report their lag.
DATABASE_REPLICA_MAX_LAG_SECONDS = env.int("DATABASE_REPLICA_MAX_LAG_SECONDS", default=2)
# How often each process asks each replica for its lag (in the background).
DATABASE_REPLICA_CHECK_SECONDS = env.float("DATABASE_REPLICA_CHECK_SECONDS", default=1.0)
DATABASE_REPLICA_CONNECT_TIMEOUT = env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=1)
DATABASE_ROUTERS: list[str] = [*_OWNERSHIP_ROUTERS]


def replica_databases(urls: list[str], primary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``replica1``, ``replica2``, ... for ``urls``: the primary's tuning, a
    short connect timeout (a replica that is down costs a read that long, then
    is left alone), and, in test runs, a mirror of the primary (Django creates
    no test database on them)."""
    replicas = {}
    for number, url in enumerate(urls, 1):
        config = env.db_url_config(url)
        config.setdefault("OPTIONS", {}).setdefault(
            "connect_timeout", DATABASE_REPLICA_CONNECT_TIMEOUT
        )
        replica = _tune_database(config)
        if replica["ENGINE"] != primary["ENGINE"]:
            raise ImproperlyConfigured(
                f"DATABASE_REPLICA_URLS: replica {number} is {replica['ENGINE']}, "
                f"the primary {primary['ENGINE']}: a replica is a copy of the primary."
            )
        replica["TEST"] = {**replica.get("TEST", {}), "MIRROR": "default"}
        replicas[f"replica{number}"] = replica
    return replicas


if DATABASE_REPLICA_URLS:
    if not ARCANA_DEPLOYMENT.holds_database:
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_URLS must not be set for the {ARCANA_DEPLOYMENT.tier} tier: "
            "only the repository tier holds the database credentials."
        )
    _longest_miss = DATABASE_REPLICA_MAX_LAG_SECONDS + 2 * DATABASE_REPLICA_CHECK_SECONDS + 1
    if _longest_miss > DATABASE_REPLICA_PIN_SECONDS:
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_PIN_SECONDS must be at least DATABASE_REPLICA_MAX_LAG_SECONDS + "
            f"2 * DATABASE_REPLICA_CHECK_SECONDS + 1 ({_longest_miss:g}): a usable replica can be "
            "that far behind, and a writer must read the primary until it has their write."
        )
    DATABASES.update(replica_databases(DATABASE_REPLICA_URLS, DATABASES["default"]))
    DATABASE_ROUTERS = [*_OWNERSHIP_ROUTERS, "arcana.db.routers.ReplicaRouter"]

# --- cache ------------------------------------------------------------------
# REDIS_URL=redis://host:6379/0 for one Redis server, which every process and
# host shares; or, for a primary with replicas that Redis Sentinel fails over,
# REDIS_SENTINELS=host:port,host:port and REDIS_SENTINEL_MASTER=name (optional
# REDIS_SENTINEL_DB, REDIS_PASSWORD for the data nodes, REDIS_SENTINEL_PASSWORD
# for the Sentinels). The two ways are mutually exclusive; see
# arcana/core/rediscache.py.
#
# Redis fails open (arcana/core/cache.py): an outage slows nothing down and stops
# nothing; it is logged once. "local" is this process's memory, where rate
# limits count while Redis is away. A primary that dies is such an outage until
# the Sentinels promote a replica; the cache then follows it.
#
# Without Redis (the no-configuration default, development only: production
# refuses to start without it) the counters behind throttles and lockouts live
# in files under CACHE_DIR, which every process of the checkout shares, so
# `make run`'s REST and gRPC processes count together; and user records are not
# cached at all, since a per-process copy would outlive a deactivation or a role
# change made through the other process.

REDIS_URL: str | None = env.str("REDIS_URL", default=None)
_REDIS_CACHE = redis_cache(os.environ)
# Whether the default cache is Redis, shared by every process and host.
SHARED_CACHE = _REDIS_CACHE is not None
CACHE_DIR = Path(env.str("CACHE_DIR", default=str(BASE_DIR / ".cache")))
_LOCAL_CACHE = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "arcana"}
if _REDIS_CACHE is not None:
    CACHES = {
        "default": _REDIS_CACHE,
        "local": {**_LOCAL_CACHE, "LOCATION": "arcana-local"},
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(CACHE_DIR),
            # Culling drops a third of the entries once full: keep it rare.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        },
        "local": {**_LOCAL_CACHE, "LOCATION": "arcana-local"},
    }

# Cache user records (cache-aside, invalidated on every write) only where the
# cache is shared by every process that serves them.
USER_CACHE: bool = env.bool("USER_CACHE", default=SHARED_CACHE)
# Seconds a cached user record lives; writes invalidate it at once.
USER_CACHE_TIMEOUT = env.int("USER_CACHE_TIMEOUT", default=300)

# The user list at scale (README "Lists at scale"). An offset page makes the
# database read and discard every row before it, so page * size is capped
# (beyond it: 400 page_too_deep, follow next_cursor); ``total`` is counted
# exactly up to USER_LIST_EXACT_TOTAL_UP_TO matches, and beyond that taken
# from a count cached per filter set for USER_LIST_COUNT_SECONDS and flagged
# ``total_is_estimate``.
USER_LIST_MAX_OFFSET = env.int("USER_LIST_MAX_OFFSET", default=10_000)
USER_LIST_EXACT_TOTAL_UP_TO = env.int("USER_LIST_EXACT_TOTAL_UP_TO", default=10_000)
USER_LIST_COUNT_SECONDS = env.int("USER_LIST_COUNT_SECONDS", default=60)

# --- users and passwords ----------------------------------------------------

AUTH_USER_MODEL = "users.User"
# The admin login goes through the API's credential check: same email
# normalisation, throttle and lockout (authn/backends.py).
AUTHENTICATION_BACKENDS = ["authn.backends.CredentialsBackend"]

# Argon2id first; the others only verify (and upgrade) hashes made by them.
PASSWORD_HASHERS = [
    # Argon2id at OWASP's minimum (users/hashers.py); older Argon2 hashes are
    # upgraded to it at their next login.
    "users.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("name", "email")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Longest password accepted. Argon2 never truncates; the cap only bounds the
# work one request can ask of the hasher.
PASSWORD_MAX_LENGTH = 1024

# --- admin sessions -------------------------------------------------------------

# Only the Django admin uses sessions (the API uses tokens): an operator's
# session expires this many seconds after it was last saved (at login, and
# whenever the admin stores a message), not after Django's default two weeks.
ADMIN_SESSION_SECONDS = env.int("ADMIN_SESSION_SECONDS", default=8 * 60 * 60)
SESSION_COOKIE_AGE = ADMIN_SESSION_SECONDS

# --- browser clients (CORS) ------------------------------------------------------
# Single-page apps served from another origin call the API from the browser:
# CORS_ALLOWED_ORIGINS=https://app.example.org,http://localhost:4200 lets those
# origins (scheme://host[:port], nothing else) call the API and read its
# answers; none by default. The API authenticates with a bearer token, not a
# cookie, so credentialed requests stay off unless CORS_ALLOW_CREDENTIALS=true.
# Only the API and the JWKS answer cross-origin requests, never the admin.

_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def cors_origins(raw: list[str]) -> list[str]:
    origins = [origin.strip().rstrip("/") for origin in raw if origin.strip()]
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ImproperlyConfigured(
                f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin (scheme://host[:port], "
                "no path, no wildcard)."
            )
    return origins


CORS_ALLOWED_ORIGINS: list[str] = cors_origins(env.list("CORS_ALLOWED_ORIGINS", default=[]))
CORS_ALLOW_CREDENTIALS: bool = env.bool("CORS_ALLOW_CREDENTIALS", default=False)
CORS_URLS_REGEX = r"^/(api/|\.well-known/)"
# The API's methods and the headers its clients send; what they may read back.
CORS_ALLOW_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-request-id")
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after")
CORS_PREFLIGHT_MAX_AGE = env.int("CORS_PREFLIGHT_MAX_AGE", default=3600)

# --- request limits -----------------------------------------------------------

# Bodies above this many bytes get 413 before anything parses them.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

# --- REST framework -----------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["authn.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["arcana.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "arcana.openapi.ArcanaAutoSchema",
    "EXCEPTION_HANDLER": "arcana.errors.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

# Who calls a gRPC method: a function taking the `authorization` metadata value
# (None when absent) and returning the caller, or raising a domain error
# (arcana.core.principal.Authenticator). REST's are DEFAULT_AUTHENTICATION_CLASSES.
ARCANA_AUTHENTICATOR = "authn.authentication.authorization_authenticate"

# Trusted proxies in front of the gRPC port, which append the client's address to
# x-forwarded-for metadata. Apart from NUM_PROXIES: REST usually sits behind a
# proxy while the gRPC port is exposed directly, where the metadata is the
# client's to forge (arcana.core.grpc.client_address).
GRPC_NUM_PROXIES = env.int("GRPC_NUM_PROXIES", default=0)

# Rates per scope, e.g. "10/min". Counters live in the default cache, so they
# are shared by every process with Redis (REDIS_URL or REDIS_SENTINELS).
THROTTLE_RATES = {
    "login": env.str("THROTTLE_LOGIN", default="10/min"),
    "register": env.str("THROTTLE_REGISTER", default="5/min"),
    "refresh": env.str("THROTTLE_REFRESH", default="30/min"),
    # Per user and per client address, applied by the services on every transport
    # (arcana/core/ratelimit.py): changing the password, changing one's own email.
    "password": env.str("THROTTLE_PASSWORD", default="5/min"),
    "email_change": env.str("THROTTLE_EMAIL_CHANGE", default="10/hour"),
    # Public account-mail endpoints, per client address (REST and gRPC alike) ...
    "password_reset": env.str("THROTTLE_PASSWORD_RESET", default="5/min"),
    "password_reset_confirm": env.str("THROTTLE_PASSWORD_RESET_CONFIRM", default="10/min"),
    "verify_email": env.str("THROTTLE_VERIFY_EMAIL", default="10/min"),
    "verify_email_resend": env.str("THROTTLE_VERIFY_EMAIL_RESEND", default="5/min"),
    # ... and per target address, applied by the services: nobody can flood
    # one mailbox with resets or verification mails from many addresses.
    "account_mail": env.str("THROTTLE_ACCOUNT_MAIL", default="5/hour"),
}

# --- email -----------------------------------------------------------------------
# EMAIL_URL, read by django-environ: smtp://user:pass@host:587 (STARTTLS with
# smtp+tls://, implicit TLS with smtp+ssl://), consolemail:// (local settings'
# default), dummymail://. Mail is never sent in a request: it is queued once the
# request's transaction commits and the worker (`manage.py db_worker`) sends it,
# retrying while the server is down (users/tasks.py).
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Arcana Cloud <noreply@localhost>")
# Seconds the worker waits on a slow SMTP server before it counts as down.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Where the links in the mails point (the client's pages); ``uid`` and ``token``
# are appended as query parameters, which the page posts back to the API.
PASSWORD_RESET_URL = env.str("PASSWORD_RESET_URL", default="http://localhost:4200/reset-password")
EMAIL_VERIFICATION_URL = env.str(
    "EMAIL_VERIFICATION_URL", default="http://localhost:4200/verify-email"
)
# Seconds a reset or verification link works (Django's PasswordResetTokenGenerator).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)
# Refuse logins of users whose address is unverified; an email change then takes
# effect only once the new address is confirmed.
REQUIRE_EMAIL_VERIFICATION = env.bool("REQUIRE_EMAIL_VERIFICATION", default=False)
# A mail the SMTP server refused or could not take is tried again after
# MAIL_RETRY_SECONDS, doubling each time, MAIL_MAX_ATTEMPTS times in all.
MAIL_RETRY_SECONDS = env.float("MAIL_RETRY_SECONDS", default=30.0)
MAIL_MAX_ATTEMPTS = env.int("MAIL_MAX_ATTEMPTS", default=8)
# A task still running TASK_STUCK_AFTER_SECONDS after a worker claimed it lost
# its worker (killed, evicted, out of memory): `manage.py recover_stuck_tasks`
# (docker/entrypoint.sh recover, every 5 minutes) queues it again, or fails it
# ("worker lost") once TASK_STUCK_MAX_RUNS workers have claimed it. Keep the
# first well above the longest a mail can take (a few EMAIL_TIMEOUTs).
TASK_STUCK_AFTER_SECONDS = env.int("TASK_STUCK_AFTER_SECONDS", default=900)
TASK_STUCK_MAX_RUNS = env.int("TASK_STUCK_MAX_RUNS", default=3)
TASKS = {
    "default": {"BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend")}
}

# --- gRPC -----------------------------------------------------------------------

# Threads per server process for unary calls (`grpcrunserver --max-workers`); the
# pool has GRPC_MAX_STREAMS more for streams, so held streams never take these.
GRPC_MAX_WORKERS = env.int("GRPC_MAX_WORKERS", default=10)
# Streams (reflection, health Watch) open at once per process; the next one gets
# RESOURCE_EXHAUSTED at once (arcana.grpc.interceptors.CapacityInterceptor).
GRPC_MAX_STREAMS = env.int("GRPC_MAX_STREAMS", default=10)
# Calls admitted at once per process, running or queued for a thread; beyond
# it grpc answers RESOURCE_EXHAUSTED instead of queueing without end.
GRPC_MAX_CONCURRENT_RPCS = env.int("GRPC_MAX_CONCURRENT_RPCS", default=100)
# Seconds a client has to send a unary call's request message before the call
# is cancelled (a call waiting for it holds a worker thread).
GRPC_REQUEST_TIMEOUT = env.float("GRPC_REQUEST_TIMEOUT", default=2.0)
# A connection with no call for this long is closed (GOAWAY); every connection
# is closed after GRPC_MAX_CONNECTION_AGE, its calls getting the grace to end.
GRPC_MAX_CONNECTION_IDLE = env.float("GRPC_MAX_CONNECTION_IDLE", default=300.0)
GRPC_MAX_CONNECTION_AGE = env.float("GRPC_MAX_CONNECTION_AGE", default=1800.0)
# With `grpcrunserver --workers N`, worker i also listens on this port + i, so a
# per-call balancer (round_robin client, nginx grpc_pass) spreads calls evenly;
# the shared port spreads connections only (arcana.grpc.server.supervise).
GRPC_WORKER_PORTS: int | None = env.int("GRPC_WORKER_PORTS", default=None)
# Largest message the server sends or accepts, in bytes.
GRPC_MAX_MESSAGE_BYTES = env.int("GRPC_MAX_MESSAGE_BYTES", default=4 * 1024 * 1024)
# Seconds in-flight calls get to finish after SIGTERM/SIGINT.
GRPC_SHUTDOWN_GRACE = env.float("GRPC_SHUTDOWN_GRACE", default=10.0)
GRPC_MAX_CONNECTION_AGE_GRACE = env.float(
    "GRPC_MAX_CONNECTION_AGE_GRACE", default=GRPC_SHUTDOWN_GRACE
)
# Seconds between the database checks behind the gRPC health status.
# Layered mode's internal servers close connections sooner, so that callers
# re-resolve a dns:/// name and spread over replicas added since.
ARCANA_INTERNAL_MAX_CONNECTION_AGE = env.float("ARCANA_INTERNAL_MAX_CONNECTION_AGE", default=120.0)
GRPC_HEALTH_INTERVAL = env.float("GRPC_HEALTH_INTERVAL", default=2.0)
# Server reflection (what grpcurl uses to list and describe services). On by
# default for development; production should consider switching it off.
GRPC_REFLECTION = env.bool("GRPC_REFLECTION", default=True)
# PEM files: the server's certificate chain and key (TLS; both or neither) and,
# for mutual TLS, the CA whose certificates clients must present. Unset: plaintext.
GRPC_TLS_CERT: str = env.str("GRPC_TLS_CERT", default="")
GRPC_TLS_KEY: str = env.str("GRPC_TLS_KEY", default="")
GRPC_TLS_CLIENT_CA: str = env.str("GRPC_TLS_CLIENT_CA", default="")

GRPC_FRAMEWORK = {
    "ROOT_HANDLERS_HOOK": "arcana.grpc.server.grpc_handlers",
    # Outermost first. Upstream imports these but never instantiates them;
    # arcana.core.grpc_compat.server_interceptors() does.
    "SERVER_INTERCEPTORS": [
        "arcana.grpc.interceptors.ErrorInterceptor",
        "arcana.grpc.interceptors.AuthInterceptor",
        "arcana.grpc.interceptors.DecodeInterceptor",
    ],
}

# Failed credential checks (API and admin login, current-password checks) lock a
# client out of one account for LOGIN_LOCKOUT_SECONDS after LOGIN_LOCKOUT_FAILURES
# failures from that client's address within that window; after
# LOGIN_LOCKOUT_ACCOUNT_FAILURES failures from all addresses together, everyone
# is locked out of it (arcana/core/lockout.py). Operators unlock in the admin.
LOGIN_LOCKOUT_FAILURES = env.int("LOGIN_LOCKOUT_FAILURES", default=5)
LOGIN_LOCKOUT_ACCOUNT_FAILURES = env.int("LOGIN_LOCKOUT_ACCOUNT_FAILURES", default=100)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

# --- JWT ----------------------------------------------------------------------

# HS256 with JWT_SIGNING_KEY by default: local and test settings give a
# development key; production demands a real one.
JWT_SIGNING_KEY: str = env.str("JWT_SIGNING_KEY", default="")
# Or an asymmetric pair (arcana/core/jwtkeys.py): JWT_PRIVATE_KEY where tokens are
# minted (its public half is derived), JWT_PUBLIC_KEY alone where they are only
# verified; the public key is published at /.well-known/jwks.json. Each is PEM
# text or the path of a PEM file; the key's type picks EdDSA, ES256 or RS256.
JWT_KEYS = load_jwt_keys(
    private=env.str("JWT_PRIVATE_KEY", default=""), public=env.str("JWT_PUBLIC_KEY", default="")
)
if (
    JWT_KEYS is not None
    and JWT_KEYS.private_pem is None
    and ARCANA_DEPLOYMENT.mode is Mode.MONOLITHIC
):
    raise ImproperlyConfigured(
        "JWT_PRIVATE_KEY must be set in monolithic mode, whose processes mint tokens "
        "(JWT_PUBLIC_KEY alone only verifies them)."
    )

if ARCANA_DEPLOYMENT.mode is not Mode.MONOLITHIC:
    # Only one kind of process mints tokens (layered: the service tier;
    # microservices: the auth service): a shared HS256 secret would let every
    # process mint them, so split modes sign with a key pair, the private half
    # where tokens are minted, the public half where they are only verified.
    _where = ARCANA_DEPLOYMENT.name
    _kind = "tier" if ARCANA_DEPLOYMENT.mode is Mode.LAYERED else "service"
    _minter = "the service tier" if _kind == "tier" else "the auth service"
    _verifier = "the controller" if _kind == "tier" else "the users service"
    _mints = ARCANA_DEPLOYMENT.tier is Tier.SERVICE or ARCANA_DEPLOYMENT.service is Service.AUTH
    _verifies = (
        ARCANA_DEPLOYMENT.tier is Tier.CONTROLLER or ARCANA_DEPLOYMENT.service is Service.USERS
    )
    if env.str("JWT_SIGNING_KEY", default=""):
        raise ImproperlyConfigured(
            f"JWT_SIGNING_KEY (HS256) is not for {ARCANA_DEPLOYMENT.mode} mode, where only "
            f"{_minter} may mint tokens: use JWT_PRIVATE_KEY there and JWT_PUBLIC_KEY at "
            f"{_verifier}."
        )
    if _mints and (JWT_KEYS is None or JWT_KEYS.private_pem is None):
        raise ImproperlyConfigured(
            f"JWT_PRIVATE_KEY must be set for the {_where} {_kind} (it mints tokens)."
        )
    if not _mints and env.str("JWT_PRIVATE_KEY", default=""):
        raise ImproperlyConfigured(
            f"JWT_PRIVATE_KEY must not be set for the {_where} {_kind}: only {_minter} "
            f"mints tokens (give {_verifier} JWT_PUBLIC_KEY)."
        )
    if _verifies and JWT_KEYS is None:
        raise ImproperlyConfigured(
            f"JWT_PUBLIC_KEY must be set for the {_where} {_kind} (it verifies access tokens)."
        )

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "LEEWAY": 0,
}
if JWT_KEYS is not None:
    SIMPLE_JWT.update(
        ALGORITHM=JWT_KEYS.algorithm,
        SIGNING_KEY=JWT_KEYS.private_pem,
        VERIFYING_KEY=JWT_KEYS.public_pem,
    )

# --- OpenAPI --------------------------------------------------------------------

# Who may read /api/schema and /api/docs (arcana/docs.py): "public" (anyone),
# "admin" (an API admin's bearer token or a staff admin-site session; others
# get 401/403), "off" (404). Production defaults to "admin".
API_DOCS_MODES = ("public", "admin", "off")


def api_docs_mode(default: str) -> str:
    mode: str = env.str("API_DOCS", default=default).strip().lower()
    if mode not in API_DOCS_MODES:
        raise ImproperlyConfigured(f"API_DOCS must be one of {', '.join(API_DOCS_MODES)}.")
    return mode


API_DOCS = api_docs_mode("public")

SPECTACULAR_SETTINGS = {
    "TITLE": "Arcana Cloud API",
    "DESCRIPTION": "Users and authentication. Errors: 400 {errors:{field:[...]}}, "
    "otherwise {error, code}.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The serializers are already split into input and output ones: splitting
    # again would name components "LoginInputRequest".
    "COMPONENT_SPLIT_REQUEST": False,
    # Tags and operation ids without the version ("auth", "auth_login_create").
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Enum values speak for themselves; "* user - User" lines only clutter clients.
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "arcana.openapi.reference_parameter_enums",
        "arcana.openapi.require_request_bodies",
    ],
}

# --- metrics ------------------------------------------------------------------
# Prometheus metrics (arcana/core/metrics.py): REST processes serve them at
# /metrics, to clients from METRICS_ALLOWED_IPS (addresses or networks; the
# loopback by default) or presenting ``Authorization: Bearer <METRICS_TOKEN>``
# when that is set. The gateway never passes /metrics on. gRPC server and tier
# processes serve them on a port of their own, GRPC_METRICS_HOST:GRPC_METRICS_PORT
# (no port: none). Processes that fork workers (the REST server, grpcrunserver and
# tierserver --workers N) count into PROMETHEUS_MULTIPROC_DIR, a temporary
# directory of their own unless set, and a scrape sums every worker.

METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_ALLOWED_IPS: list[str] = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
for _entry in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_entry.strip(), strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS: {_entry!r} is not an address or a network (10.0.0.0/8)."
        ) from None
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
GRPC_METRICS_HOST: str = env.str("GRPC_METRICS_HOST", default="127.0.0.1")
GRPC_METRICS_PORT: int | None = env.int("GRPC_METRICS_PORT", default=None)

# --- logging --------------------------------------------------------------------

# LOG_FORMAT=json (one JSON object a line; production's) or console (readable;
# local settings'); REQUEST_LOG: one line per REST request and gRPC call, with
# its request id, trace id, user id, route or RPC, status and duration_ms
# (arcana/observe/logs.py).

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
REQUEST_LOG = env.bool("REQUEST_LOG", default=True)


def log_format(default: str) -> str:
    try:
        return checked_log_format(env.str("LOG_FORMAT", default=default).strip().lower())
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


LOG_FORMAT = log_format("json")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"structured": structured_formatter(LOG_FORMAT)},
    "filters": {
        # A bad Host header: one line per host per minute, no traceback.
        "disallowed_host": {"()": "arcana.logfilters.DisallowedHostFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "structured"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.security.DisallowedHost": {"filters": ["disallowed_host"]},
        # grpc hides server exceptions behind a NullHandler unless configured.
        "grpc": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
