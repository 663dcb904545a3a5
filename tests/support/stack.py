"""The deployed servers as real processes: shared by ``make bench``, ``make soak``
and the live tests (``tests/live``).

The pieces, usable one by one (``bench/main.py`` does):

- :func:`server_env` -- the environment of a production-like server
  (``arcana.settings.production``, fresh keys shared by every process so one
  token works on both protocols, generous throttles);
- :func:`mysql_database_ensure` / :func:`mysql_database_create` /
  :func:`mysql_database_drop` / :func:`mysql_connect` -- MariaDB databases;
- :func:`manage` -- ``manage.py`` with that environment (migrate, createsuperuser);
- :func:`rest_server` / :func:`grpc_server` -- a ``Server`` (``tests.support.servers``)
  for the REST server (``python -m arcana.wsgi_server``: granian serving
  ``arcana.wsgi``) and ``manage.py grpcrunserver --workers N``, and
  :func:`wait_rest_ready` / :func:`wait_grpc_ready` to wait until every worker
  serves.

And the whole thing in one call::

    with live_stack("mysql://root@127.0.0.1:3306/x", "redis://127.0.0.1:6379/13",
                    rest_workers=2, grpc_workers=2,
                    env_overrides={"REST_GRACEFUL_TIMEOUT": "5"}) as stack:
        stack.rest_port, stack.grpc_address      # 127.0.0.1 only
        stack.admin_token, stack.admin_id, stack.admin_email, stack.password
        stack.env                                # what the servers run with
        stack.rest, stack.grpc                   # Server (pids(), stop(), log_text())
        stack.rest_json("GET", "/api/v1/auth/me", token=stack.admin_token)
        stack.query("SELECT COUNT(*) FROM users_user")   # the stack's own database
        extra = stack.spawn_rest(workers=1, env_overrides={...})  # more servers, same database

With ``mode="layered"`` the same call starts layered mode's three tiers as
production runs them: the repository tier (``tierserver``, the only process
with ``DATABASE_URL``), ``service_replicas`` service tiers (``tierserver``,
the only holders of the token-minting key) and the controller tier
(the REST server + grpcrunserver, with the public key only) on the public ports;
internal calls use mutual TLS from a CA made for the run (:func:`tier_pki`).
``stack.tiers`` holds the tier servers, ``stack.tier_env(tier)`` their
environment; ``admin_port=True`` adds the repository tier's HTTP port (the
Django admin) as ``stack.admin_port``.

:func:`live_stack` creates its own database (``<prefix>_<random>``) on the
server ``database_url`` points to (the database named in the URL is not
touched), migrates it, creates an admin with ``createsuperuser --noinput``,
starts both servers, and on exit stops every process it started and drops the
database. Its cache entries live under a key prefix of their own in the Redis
database ``redis_url`` names, and are deleted at exit (the database is never
flushed: others may share it). ``manage.py`` and that cleanup always talk to
``database_url`` and ``redis_url`` directly; the servers may be pointed
elsewhere, e.g. at fault-injection proxies (``tests/faults``), with
``server_database_url`` (the same MariaDB server seen another way; the stack's
own database is substituted for the one it names) and ``server_redis_url``.
``env_overrides`` apply to the servers only, ``grpc_env_overrides`` to the gRPC
one alone.
"""

from __future__ import annotations

import functools
import http.client
import importlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import PYTHON, ROOT, Server, free_port, grpc_serving, http_ok, log_count

# Passes every password validator; protects throwaway users in throwaway databases.
PASSWORD = "violet otter harbour lantern 7319"
GENEROUS_RATE = "1000000/min"
# granian logs it from a worker once the application is loaded.
REST_READY_MARKER = "Started worker-"
GRPC_READY_MARKER = "serving gRPC on"


# --- environment ------------------------------------------------------------------------


def image_env(name: str) -> str:
    """The value the production image gives ``name`` (an ``ENV`` of docker/Dockerfile)."""
    found = re.search(
        rf"^\s*(?:ENV\s+)?{name}=(\S+)", (ROOT / "docker" / "Dockerfile").read_text(), re.M
    )
    if found is None:
        raise LookupError(f"docker/Dockerfile sets no {name}")
    return found.group(1)


def server_env(
    database_url: str,
    redis_url: str,
    *,
    workers: int = 2,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What a server runs with: production settings, fresh keys, generous throttles."""
    env = dict(os.environ)
    # Each server counts its metrics in a directory of its own (two REST
    # masters given one would clear each other's files at start).
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DJANGO_SETTINGS_MODULE="arcana.settings.production",
        # Fresh per run and shared by every server, so one token works on both protocols.
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SIGNING_KEY=secrets.token_urlsafe(48),
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        THROTTLE_LOGIN=GENEROUS_RATE,
        THROTTLE_REGISTER=GENEROUS_RATE,
        THROTTLE_REFRESH=GENEROUS_RATE,
        # The admin's one token must outlive a long run.
        JWT_ACCESS_MINUTES="240",
        DATABASE_URL=database_url,
        # Empty rather than absent: a .env file cannot then switch the cache to Redis.
        REDIS_URL=redis_url,
        # Without Redis: one host, counters in files its processes share.
        ARCANA_SINGLE_HOST="false" if redis_url else "true",
        REST_WORKERS=str(workers),
        REST_GRACEFUL_TIMEOUT="3",
        GRPC_SHUTDOWN_GRACE="3",
        PYTHONUNBUFFERED="1",
        # As in the image: Argon2's blocks in huge pages (docker/Dockerfile says why).
        GLIBC_TUNABLES=image_env("GLIBC_TUNABLES"),
    )
    if not redis_url:  # a directory of this run's, not the checkout's development cache
        env.setdefault("CACHE_DIR", tempfile.mkdtemp(prefix="arcana-bench-cache-"))
    env.update(overrides or {})
    return env


def manage(env: Mapping[str, str], *args: str) -> None:
    """``manage.py ARGS`` with ``env``; raises RuntimeError with its output on failure."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def create_admin(env: Mapping[str, str], *, email: str, name: str, password: str) -> None:
    """An admin made as an operator makes one (``createsuperuser --noinput``)."""
    manage(
        {
            **env,
            "DJANGO_SUPERUSER_EMAIL": email,
            "DJANGO_SUPERUSER_NAME": name,
            "DJANGO_SUPERUSER_PASSWORD": password,
        },
        "createsuperuser",
        "--noinput",
    )


# --- layered mode ---------------------------------------------------------------------

TIER_READY_MARKER = "tier listening on port"


@dataclass(frozen=True)
class TierPki:
    """PEM files of a CA made for one run and a certificate every tier presents
    (as server and as client) for the hosts it was issued for."""

    cert: Path
    key: Path
    ca: Path

    def env(self) -> dict[str, str]:
        return {
            "ARCANA_INTERNAL_TLS_CERT": str(self.cert),
            "ARCANA_INTERNAL_TLS_KEY": str(self.key),
            "ARCANA_INTERNAL_TLS_CA": str(self.ca),
        }


def tier_pki(directory: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> TierPki:
    """Mutual-TLS files for the internal hops, written to ``directory`` (trustme:
    a development dependency, as are the benchmarks and live tests); the
    certificate names ``hosts``, the addresses the tiers are called at."""
    trustme: Any = importlib.import_module("trustme")
    ca = trustme.CA(organization_name="Arcana live-stack CA")
    leaf = ca.issue_cert(*hosts)
    pki = TierPki(cert=directory / "tier.pem", key=directory / "tier.key", ca=directory / "ca.pem")
    leaf.cert_chain_pems[0].write_to_path(str(pki.cert))
    leaf.private_key_pem.write_to_path(str(pki.key))
    ca.cert_pem.write_to_path(str(pki.ca))
    pki.key.chmod(0o600)
    return pki


def jwt_key_pair() -> tuple[str, str]:
    """(private, public) PEM of a fresh Ed25519 key: layered mode signs with a pair."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


# Only the repository tier holds the database (its credentials included).
DATABASE_VARIABLES = ("DATABASE_URL", "DATABASE_REPLICA_URLS")


def _without_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` less the database and the JWT keys, which each split process gets
    only where it needs them."""
    held = (*DATABASE_VARIABLES, "JWT_SIGNING_KEY", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY")
    return {key: value for key, value in env.items() if key not in held}


def layered_envs(
    env: Mapping[str, str],
    *,
    pki: TierPki,
    jwt_keys: tuple[str, str],
    service_addresses: Sequence[str],
    repository_address: str,
) -> dict[str, dict[str, str]]:
    """Each tier's environment from a monolithic server's ``env``: the database
    for the repository tier alone, the private key (of ``jwt_keys``, from
    :func:`jwt_key_pair`) for the service tier alone, the public key at the
    controller."""
    private, public = jwt_keys
    database = {key: env[key] for key in DATABASE_VARIABLES if key in env}
    common = _without_credentials(env)
    common.update(
        ARCANA_MODE="layered",
        ARCANA_SERVICE_ADDR=",".join(service_addresses),
        ARCANA_REPOSITORY_ADDR=repository_address,
        **pki.env(),
    )
    return {
        "repository": {**common, "ARCANA_TIER": "repository", **database},
        "service": {**common, "ARCANA_TIER": "service", "JWT_PRIVATE_KEY": private},
        "controller": {**common, "ARCANA_TIER": "controller", "JWT_PUBLIC_KEY": public},
    }


# --- microservices mode ----------------------------------------------------------------

SERVICES = ("users", "auth")
GATEWAY_SH = ROOT / "scripts" / "gateway.sh"


def microservices_envs(
    env: Mapping[str, str],
    *,
    pki: TierPki,
    jwt_keys: tuple[str, str],
    databases: Mapping[str, str],
    internal_addresses: Mapping[str, str],
    replicas: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """Each microservice's environment from a monolithic server's ``env``: its
    own database (``databases[service]``) and that database's read replicas
    (``replicas[service]``, a ``DATABASE_REPLICA_URLS`` value, if given), the
    other one's internal address, the private key for auth alone and the
    public key for users; both behind the gateway (one trusted proxy)."""
    private, public = jwt_keys
    common = _without_credentials(env)
    common.update(
        ARCANA_MODE="microservices",
        ARCANA_USERS_ADDR=internal_addresses["users"],
        ARCANA_AUTH_ADDR=internal_addresses["auth"],
        NUM_PROXIES="1",
        GRPC_NUM_PROXIES="1",
        **pki.env(),
    )
    keys = {"users": {"JWT_PUBLIC_KEY": public}, "auth": {"JWT_PRIVATE_KEY": private}}
    return {
        service: {
            **common,
            "ARCANA_SERVICE": service,
            "DATABASE_URL": databases[service],
            **({"DATABASE_REPLICA_URLS": replicas[service]} if replicas else {}),
            **keys[service],
        }
        for service in SERVICES
    }


def gateway_server(
    env: Mapping[str, str],
    *,
    rest_port: int,
    grpc_port: int,
    upstreams: Mapping[str, str],
    log_path: Path,
) -> Server:
    """nginx as the microservices gateway (``scripts/gateway.sh``), on 127.0.0.1.
    ``upstreams``: ``USERS_REST_UPSTREAM`` ... ``AUTH_GRPC_UPSTREAM`` -> host:port."""
    gateway_env = {
        **env,
        **upstreams,
        "REST_PORT": str(rest_port),
        "GRPC_PORT": str(grpc_port),
        "GATEWAY_DIR": str(log_path.parent / f"nginx-{rest_port}"),
    }
    return Server("gateway (nginx)", [str(GATEWAY_SH)], gateway_env, log_path)


def tier_server(env: Mapping[str, str], address: str, log_path: Path, *, name: str) -> Server:
    """``manage.py tierserver ADDRESS`` (the tier is ``env``'s ``ARCANA_TIER``)."""
    return Server(name, [PYTHON, "manage.py", "tierserver", address], dict(env), log_path)


def wait_tier_ready(server: Server, timeout: float = 60) -> None:
    server.wait_until(log_count(server, TIER_READY_MARKER, 1), timeout)


# --- MySQL / MariaDB ----------------------------------------------------------------------


def is_mysql_url(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.startswith(("mysql", "mariadb"))


def database_name(url: str) -> str:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/"))
    # Names are interpolated into DDL (no placeholders there): plain ones only.
    if not re.fullmatch(r"[A-Za-z0-9_$]+", name):
        raise RuntimeError(f"DATABASE_URL must name a plain database, got {name!r}")
    return name


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def mysql_connect(url: str, *, database: bool = True) -> Any:
    """A MySQLdb connection (autocommit) to the server of ``url`` (and its database)."""
    parsed = urllib.parse.urlsplit(url)
    mysqldb: Any = importlib.import_module("MySQLdb")  # mysqlclient ships no type stubs
    options: dict[str, Any] = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": urllib.parse.unquote(parsed.username or "root"),
        "passwd": urllib.parse.unquote(parsed.password or ""),
        "connect_timeout": 5,
        "charset": "utf8mb4",
    }
    if database:
        options["db"] = database_name(url)
    conn = mysqldb.connect(**options)
    conn.autocommit(True)
    return conn


def _execute(url: str, *statements: str) -> Any:
    conn = mysql_connect(url, database=False)
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
        return cursor.fetchone()
    finally:
        conn.close()


def mysql_database_ensure(url: str) -> str:
    """Create the database the URL names when it is missing; returns the server version."""
    name = database_name(url)
    row = _execute(
        url,
        f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        "SELECT VERSION()",
    )
    return str(row[0])


def mysql_database_create(url: str, prefix: str = "arcana_live") -> str:
    """A new, empty database ``<prefix>_<random>`` beside the one ``url`` names;
    returns its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    created = with_database(url, name)
    _execute(created, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    return created


def mysql_database_drop(url: str) -> None:
    _execute(url, f"DROP DATABASE IF EXISTS `{database_name(url)}`")


def redis_delete_prefix(redis_url: str, prefix: str) -> int:
    """Delete the keys under ``prefix`` (never FLUSHDB: the database may be shared)."""
    redis: Any = importlib.import_module("redis")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


# --- servers ---------------------------------------------------------------------------


def rest_server(
    env: Mapping[str, str],
    port: int,
    log_path: Path,
    *,
    workers: int | None = None,
    app: str | None = None,
    name: str = "REST (arcana.wsgi_server)",
) -> Server:
    """The REST server as deployed (``python -m arcana.wsgi_server``, granian)
    on 127.0.0.1:``port``; ``app``: another WSGI application (``MODULE:NAME``)
    served the same way."""
    server_env = {**env, "REST_BIND": f"127.0.0.1:{port}"}
    if workers is not None:
        server_env["REST_WORKERS"] = str(workers)
    argv = [PYTHON, "-m", "arcana.wsgi_server", *([app] if app else [])]
    return Server(name, argv, server_env, log_path)


def grpc_server(
    env: Mapping[str, str],
    address: str,
    log_path: Path,
    *,
    workers: int,
    name: str = "gRPC (grpcrunserver)",
) -> Server:
    """``manage.py grpcrunserver ADDRESS --workers N``."""
    argv = [PYTHON, "manage.py", "grpcrunserver", address, "--workers", str(workers)]
    return Server(name, argv, dict(env), log_path)


def wait_rest_ready(server: Server, port: int, workers: int, timeout: float = 60) -> None:
    server.wait_until(log_count(server, REST_READY_MARKER, workers), timeout)
    server.wait_until(http_ok(port, "/healthz"), timeout)


def wait_grpc_ready(server: Server, address: str, workers: int, timeout: float = 60) -> None:
    server.wait_until(log_count(server, GRPC_READY_MARKER, workers), timeout)
    server.wait_until(grpc_serving(address), timeout)


def rest_login(port: int, email: str, password: str) -> dict[str, Any]:
    """Log in over REST on 127.0.0.1:``port``: the token response
    (``access``, ``refresh``, ``user``); raises unless it is a 200."""
    status, body = rest_json(
        port, "POST", "/api/v1/auth/login", {"email": email, "password": password}
    )
    if status != 200:
        raise RuntimeError(f"login of {email} failed: HTTP {status} {body}")
    return dict(body)


def rest_json(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    token: str = "",
    timeout: float = 120,
) -> tuple[int, Any]:
    """One request on a fresh connection to 127.0.0.1:``port``: (status, decoded body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    return response.status, json.loads(payload) if payload else None


# --- the whole stack ----------------------------------------------------------------------


@dataclass
class LiveStack:
    """Servers on their own database, and an admin to act as. See the module docstring."""

    database_url: str  # the stack's own database, reached directly
    redis_url: str
    env: dict[str, str]  # what the servers run with (overrides included)
    setup_env: dict[str, str]  # what manage.py runs with (no overrides)
    rest: Server
    grpc: Server
    rest_port: int
    grpc_address: str
    admin_email: str
    admin_id: str
    admin_token: str
    password: str
    log_dir: Path
    _stack: ExitStack = field(repr=False)
    mode: str = "monolithic"
    # Layered mode: "repository" -> [its tierserver], "service" -> [one per replica].
    tiers: dict[str, list[Server]] = field(default_factory=dict)
    tier_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    service_addresses: list[str] = field(default_factory=list)
    repository_address: str = ""
    admin_port: int = 0
    # Microservices mode: "users" / "auth" -> that service's database URL.
    databases: dict[str, str] = field(default_factory=dict)
    # With metrics=True: a Prometheus job ("controller-rest", "controller-grpc",
    # "service", "repository"; monolithic: "rest", "grpc") -> host:port targets.
    metrics_targets: dict[str, list[str]] = field(default_factory=dict)

    def tier_env(self, tier: str) -> dict[str, str]:
        """The environment of a layered-mode tier (``self.env`` is the controller's)."""
        return self.tier_envs[tier]

    def restart_tier(self, tier: str, index: int = 0) -> Server:
        """Start a stopped tier server again, on the same address and environment."""
        server = _again(self.tiers[tier][index])
        self.tiers[tier][index] = server
        self._launch(server, lambda: wait_tier_ready(server))
        return server

    def stop_service(self, service: str, grace: float = 10) -> None:
        """Microservices mode: stop every process of ``service`` (REST, gRPC, internal)."""
        for server in self.tiers[service]:
            server.stop(grace)

    def restart_service(self, service: str) -> None:
        """Microservices mode: start a stopped service's processes again, on the
        same addresses and environment, and wait until each serves."""
        rest, grpc, hop = (_again(server) for server in self.tiers[service])
        self.tiers[service] = [rest, grpc, hop]
        port = int(rest.address.rpartition(":")[2])
        self._launch(rest, lambda: rest.wait_until(http_ok(port, "/healthz"), 60))
        self._launch(grpc, lambda: grpc.wait_until(grpc_serving(grpc.address), 60))
        self._launch(hop, lambda: wait_tier_ready(hop))

    def rest_json(
        self, method: str, path: str, body: Any = None, token: str = "", timeout: float = 120
    ) -> tuple[int, Any]:
        return rest_json(self.rest_port, method, path, body, token, timeout)

    @contextmanager
    def db(self) -> Iterator[Any]:
        """A MySQLdb connection (autocommit) to the stack's database."""
        conn = mysql_connect(self.database_url)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            cursor = conn.cursor()
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())

    def spawn_rest(
        self, *, workers: int = 2, env_overrides: Mapping[str, str] | None = None
    ) -> tuple[Server, int]:
        """Another REST server on the same database and keys (stopped with the stack)."""
        port = free_port()
        server = rest_server(
            {**self.env, **(env_overrides or {})},
            port,
            self.log_dir / f"rest-{port}.log",
            workers=workers,
        )
        self._launch(server, lambda: wait_rest_ready(server, port, workers))
        return server, port

    def spawn_grpc(
        self, *, workers: int = 2, env_overrides: Mapping[str, str] | None = None
    ) -> tuple[Server, str]:
        """Another grpcrunserver on the same database and keys (stopped with the stack)."""
        address = f"127.0.0.1:{free_port()}"
        server = grpc_server(
            {**self.env, **(env_overrides or {})},
            address,
            self.log_dir / f"grpc-{address.rpartition(':')[2]}.log",
            workers=workers,
        )
        self._launch(server, lambda: wait_grpc_ready(server, address, workers))
        return server, address

    def _launch(self, server: Server, wait_ready: Callable[[], None]) -> None:
        self._stack.callback(server.stop)  # registered first: stopped even if never ready
        server.start()
        wait_ready()


@contextmanager
def live_stack(
    database_url: str,
    redis_url: str,
    *,
    server_database_url: str | None = None,
    server_redis_url: str | None = None,
    rest_workers: int = 2,
    grpc_workers: int = 2,
    env_overrides: Mapping[str, str] | None = None,
    grpc_env_overrides: Mapping[str, str] | None = None,
    password: str = PASSWORD,
    log_dir: Path | None = None,
    database_prefix: str = "arcana_live",
    stop_grace: float = 10,
    mode: str = "monolithic",
    service_replicas: int = 1,
    admin_port: bool = False,
    replica_urls: Sequence[str] = (),
    metrics: bool = False,
) -> Iterator[LiveStack]:
    """The REST server + grpcrunserver on a database of their own; see the module docstring.

    ``server_database_url`` / ``server_redis_url`` default to ``database_url`` /
    ``redis_url``. ``password`` is the admin's (tests pass one their secret
    scanner knows). Logs go to ``log_dir`` (a temporary directory, removed
    afterwards, if None). ``stop_grace`` is how long each server has to exit
    on SIGTERM at the end before it is killed. ``mode`` is ``"monolithic"``
    or ``"layered"`` (see the module docstring). ``replica_urls`` name read
    replicas of ``database_url``'s server (``tests.support.replication``): the servers
    get them as ``DATABASE_REPLICA_URLS``, with the stack's own database (in
    microservices mode each service's servers with that service's database).
    ``metrics`` gives every gRPC and tier process a metrics port
    (``GRPC_METRICS_PORT``) and lists the stack's scrape targets
    (``LiveStack.metrics_targets``; monolithic and layered modes).
    """
    targets: dict[str, list[str]] = {}

    def metered(env: Mapping[str, str], job: str) -> dict[str, str]:
        if not metrics:
            return dict(env)
        port = free_port()
        targets.setdefault(job, []).append(f"127.0.0.1:{port}")
        return {**env, "GRPC_METRICS_PORT": str(port)}

    if not is_mysql_url(database_url):
        raise RuntimeError("live_stack needs a mysql:// DATABASE_URL")
    if mode not in ("monolithic", "layered", "microservices"):
        raise ValueError(f"no mode {mode!r}")
    with ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arcana-live-")))
        log_dir.mkdir(parents=True, exist_ok=True)
        own_url = mysql_database_create(database_url, database_prefix)
        stack.callback(mysql_database_drop, own_url)
        cache_prefix = f"live-{database_name(own_url)}"
        if redis_url:
            stack.callback(redis_delete_prefix, redis_url, cache_prefix)
        setup_env = server_env(
            own_url, redis_url, overrides={"CACHE_KEY_PREFIX": cache_prefix, "LOG_LEVEL": "WARNING"}
        )
        env = {
            **setup_env,
            "DATABASE_URL": with_database(
                database_url if server_database_url is None else server_database_url,
                database_name(own_url),
            ),
            "REDIS_URL": redis_url if server_redis_url is None else server_redis_url,
            "LOG_LEVEL": "INFO",
            **(env_overrides or {}),
        }
        if replica_urls:
            env["DATABASE_REPLICA_URLS"] = ",".join(
                with_database(url, database_name(own_url)) for url in replica_urls
            )
        tiers: dict[str, list[Server]] = {}
        tier_envs: dict[str, dict[str, str]] = {}
        service_addresses: list[str] = []
        repository_address = ""
        if mode == "layered":
            pki = tier_pki(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pki-"))))
            service_addresses = [f"127.0.0.1:{free_port()}" for _ in range(service_replicas)]
            repository_address = f"127.0.0.1:{free_port()}"
            keys = jwt_key_pair()
            setup_tiers, tier_envs = (
                layered_envs(
                    base,
                    pki=pki,
                    jwt_keys=keys,
                    service_addresses=service_addresses,
                    repository_address=repository_address,
                )
                for base in (setup_env, env)
            )
            setup_env = setup_tiers["repository"]
            env = tier_envs["controller"]
        databases: dict[str, str] = {}
        if mode == "microservices":
            # Two databases: users' (the stack's own) and auth's.
            auth_url = mysql_database_create(database_url, database_prefix)
            stack.callback(mysql_database_drop, auth_url)
            pki = tier_pki(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pki-"))))
            internal = {service: f"127.0.0.1:{free_port()}" for service in SERVICES}
            keys = jwt_key_pair()
            server_db = database_url if server_database_url is None else server_database_url
            databases = {"users": own_url, "auth": auth_url}
            # Each service's replicas read its own database (the servers only,
            # as in the other modes: manage.py migrates the primary).
            replicas = {
                name: ",".join(
                    with_database(replica, database_name(url)) for replica in replica_urls
                )
                for name, url in databases.items()
            }
            setup_services, tier_envs = (
                microservices_envs(
                    base,
                    pki=pki,
                    jwt_keys=keys,
                    databases=urls,
                    internal_addresses=internal,
                    replicas=service_replicas_of,
                )
                for base, urls, service_replicas_of in (
                    (setup_env, databases, None),
                    (
                        env,
                        {
                            name: with_database(server_db, database_name(url))
                            for name, url in databases.items()
                        },
                        replicas if replica_urls else None,
                    ),
                )
            )
            manage(setup_services["auth"], "migrate", "--noinput")
            setup_env = setup_services["users"]
        manage(setup_env, "migrate", "--noinput")
        admin_email = f"admin-{secrets.token_hex(3)}@live.example.com"
        create_admin(setup_env, email=admin_email, name="Live Admin", password=password)

        admin_http = 0
        if mode == "layered":
            repository = tier_server(
                metered(tier_envs["repository"], "repository"),
                repository_address,
                log_dir / "repository.log",
                name="repository tier (tierserver)",
            )
            services = [
                tier_server(
                    metered(tier_envs["service"], "service"),
                    address,
                    log_dir / f"service-{index}.log",
                    name=f"service tier {index} (tierserver)",
                )
                for index, address in enumerate(service_addresses)
            ]
            tiers = {"repository": [repository], "service": services}
            for server in (repository, *services):
                stack.callback(server.stop, stop_grace)
                server.start()
            if admin_port:
                manage(setup_env, "collectstatic", "--noinput")  # as the image build does
                admin_http = free_port()
                admin = rest_server(
                    tier_envs["repository"],
                    admin_http,
                    log_dir / "admin.log",
                    workers=1,
                    name="repository tier admin (REST server)",
                )
                tiers["admin"] = [admin]
                stack.callback(admin.stop, stop_grace)
                admin.start()
            for server in (repository, *services):
                wait_tier_ready(server)
            if admin_port:
                wait_rest_ready(tiers["admin"][0], admin_http, 1)

        rest_port = free_port()
        grpc_address = f"127.0.0.1:{free_port()}"
        if mode == "microservices":
            tiers = _start_microservices(
                stack,
                tier_envs,
                internal,
                log_dir,
                rest_workers=rest_workers,
                grpc_workers=grpc_workers,
                grpc_env_overrides=grpc_env_overrides or {},
                stop_grace=stop_grace,
            )
            rest = grpc = gateway_server(
                env,
                rest_port=rest_port,
                grpc_port=int(grpc_address.rpartition(":")[2]),
                upstreams={
                    f"{service.upper()}_{kind.upper()}_UPSTREAM": tiers[service][index].address
                    for service in SERVICES
                    for index, kind in enumerate(("rest", "grpc"))
                },
                log_path=log_dir / "gateway.log",
            )
            tiers["gateway"] = [rest]
            stack.callback(rest.stop, stop_grace)
            rest.start()
            rest.wait_until(http_ok(rest_port, "/healthz"), 30)
            rest.wait_until(grpc_serving(grpc_address), 30)
            env = tier_envs["users"]
        else:
            rest = rest_server(env, rest_port, log_dir / "rest.log", workers=rest_workers)
            edge = "controller-" if mode == "layered" else ""
            if metrics:
                targets[f"{edge}rest"] = [f"127.0.0.1:{rest_port}"]
            grpc = grpc_server(
                metered({**env, **(grpc_env_overrides or {})}, f"{edge}grpc"),
                grpc_address,
                log_dir / "grpc.log",
                workers=grpc_workers,
            )
            for server in (rest, grpc):
                stack.callback(server.stop, stop_grace)
                server.start()
            wait_rest_ready(rest, rest_port, rest_workers)
            wait_grpc_ready(grpc, grpc_address, grpc_workers)

        body = rest_login(rest_port, admin_email, password)
        yield LiveStack(
            database_url=own_url,
            redis_url=redis_url,
            env=env,
            setup_env=setup_env,
            rest=rest,
            grpc=grpc,
            rest_port=rest_port,
            grpc_address=grpc_address,
            admin_email=admin_email,
            admin_id=str(body["user"]["id"]),
            admin_token=str(body["access"]),
            password=password,
            log_dir=log_dir,
            _stack=stack,
            mode=mode,
            tiers=tiers,
            tier_envs=tier_envs,
            service_addresses=service_addresses,
            repository_address=repository_address,
            admin_port=admin_http,
            databases=databases,
            metrics_targets=targets,
        )


def _start_microservices(
    stack: ExitStack,
    envs: Mapping[str, Mapping[str, str]],
    internal: Mapping[str, str],
    log_dir: Path,
    *,
    rest_workers: int,
    grpc_workers: int,
    grpc_env_overrides: Mapping[str, str],
    stop_grace: float,
) -> dict[str, list[Server]]:
    """Each service's REST, gRPC and internal servers, started and ready:
    ``{"users": [rest, grpc, internal], "auth": [...]}`` (each Server's
    ``address`` is where it listens)."""
    servers: dict[str, list[Server]] = {}
    ready: list[Callable[[], None]] = []
    for service in SERVICES:
        env = envs[service]
        rest_port = free_port()
        grpc_address = f"127.0.0.1:{free_port()}"
        rest = rest_server(
            env,
            rest_port,
            log_dir / f"{service}-rest.log",
            workers=rest_workers,
            name=f"{service} service REST",
        )
        rest.address = f"127.0.0.1:{rest_port}"
        grpc = grpc_server(
            {**env, **grpc_env_overrides},
            grpc_address,
            log_dir / f"{service}-grpc.log",
            workers=grpc_workers,
            name=f"{service} service gRPC (grpcrunserver)",
        )
        grpc.address = grpc_address
        hop = tier_server(
            env,
            internal[service],
            log_dir / f"{service}-internal.log",
            name=f"{service} service internal (tierserver)",
        )
        hop.address = internal[service]
        servers[service] = [rest, grpc, hop]
        for server in servers[service]:
            stack.callback(server.stop, stop_grace)
            server.start()
        ready += [
            functools.partial(wait_rest_ready, rest, rest_port, rest_workers),
            functools.partial(wait_grpc_ready, grpc, grpc_address, grpc_workers),
            functools.partial(wait_tier_ready, hop),
        ]
    for wait in ready:
        wait()
    return servers


def _again(old: Server) -> Server:
    """A stopped server's twin, to start again (its log in a new file)."""
    log_path = old.log_path.with_suffix(".restarted.log")
    return Server(old.name, old.argv, old.env, log_path, address=old.address)


def log_tail(server: Server, lines: int = 40) -> str:
    return "\n".join(server.log_text().splitlines()[-lines:])
