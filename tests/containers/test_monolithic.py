"""The built image in monolithic mode, as containers: ``migrate`` first, then
a ``rest`` and a ``grpc`` container, each as uid 10001 on a read-only root
with a tmpfs /tmp, secrets as mounted files (the entry point's ``*_FILE``),
checked through their published ports on 127.0.0.1 and by the image's own
HEALTHCHECK (``podman healthcheck run``), then SIGTERM under load to a
further ``rest`` and ``grpc`` container (tests/live/test_shutdown.py's check:
every call answered in full or refused).

The network: the machine's MariaDB and Redis listen on 127.0.0.1 only, which
podman's default bridge cannot reach (``host.containers.internal`` is the
host's bridge address, where nothing listens). Host networking would reach
them but put each container's fixed ports (8000, 50051) on the host's, where
other servers run. So each container gets its own network namespace from
slirp4netns with ``allow_host_loopback=true``: the host's 127.0.0.1 is
10.0.2.2 inside, and its ports are published on the host's 127.0.0.1
(18500-18503 of this suite's range, 18500-18599) as a deployment publishes them.
Database ``img`` and Redis database 7 are this suite's own.
"""

import json
import os
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import MySQLdb  # type: ignore[import-untyped]
import pytest
import redis

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc
from tests.containers.podman import (
    GRACE,
    SERVING,
    grpc_health,
    podman,
    resets_too,
    rest_health_on,
    sigterm_under_load,
)
from tests.factories import DEFAULT_PASSWORD
from tests.live.flow import Admin, RestApi, run_journeys
from tests.secret_scan import find_secret
from tests.support.clients import bearer
from tests.support.stack import GENEROUS_RATE
from tests.support.waiting import wait_for

IMAGE = os.environ.get("ARCANA_CONTAINER_IMAGE", "arcana:latest")
NETWORK = "slirp4netns:allow_host_loopback=true"
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1, seen from a slirp4netns namespace
REST_PORT = 18500
GRPC_PORT = 18501
DATABASE = "img"
REDIS_DB = 7
UID = "10001"
PREFIX = "arcana-img"
# The journey logs in and registers more often than production's limits allow.
UNTHROTTLED = {
    name: GENEROUS_RATE
    for name in ("THROTTLE_LOGIN", "THROTTLE_REGISTER", "THROTTLE_REFRESH", "THROTTLE_PASSWORD")
} | {"LOGIN_LOCKOUT_FAILURES": "1000000", "LOGIN_LOCKOUT_ACCOUNT_FAILURES": "1000000"}


def server(url: str, default: str) -> urllib.parse.SplitResult:
    """The host's server of ``url`` (the CI one by default), on 127.0.0.1."""
    parts = urllib.parse.urlsplit(url or default)
    assert parts.hostname in ("127.0.0.1", "localhost"), f"{url}: not a server on 127.0.0.1"
    return parts


@dataclass(frozen=True)
class Deployment:
    rest: str
    grpc: str
    admin: Admin
    log_dir: Path
    args: list[str]  # what every container of this deployment runs with


def container_args(secret_dir: Path, env_file: Path) -> list[str]:
    return [
        *("--network", NETWORK),
        *("--read-only", "--tmpfs", "/tmp"),  # noqa: S108  (the container's, a tmpfs)
        *("--user", f"{UID}:{UID}"),
        *("--volume", f"{secret_dir}:/run/secrets:ro"),
        *("--env-file", str(env_file)),
    ]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    assert podman("image", "exists", IMAGE, check=False).returncode == 0, f"no image {IMAGE}"
    database = server(os.environ.get("DATABASE_URL", ""), "mysql://root@127.0.0.1:3306/")
    cache = server(os.environ.get("REDIS_URL", ""), "redis://127.0.0.1:6379/0")
    connection = MySQLdb.connect(
        host="127.0.0.1",
        port=database.port or 3306,
        user=urllib.parse.unquote(database.username or "root"),
        password=urllib.parse.unquote(database.password or ""),
    )
    with connection.cursor() as cursor:  # this suite's own database, fresh
        cursor.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cursor.execute(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
    connection.close()
    redis.Redis(host="127.0.0.1", port=cache.port or 6379, db=REDIS_DB).flushdb()

    # Secrets as the deployments mount them: files, readable by the containers' uid.
    base = tmp_path_factory.mktemp("containers")
    secret_dir = base / "secrets"
    secret_dir.mkdir(mode=0o755)
    netloc = database.netloc.replace(database.hostname or "", HOST_LOOPBACK, 1)
    files = {
        "django_secret_key": secrets.token_urlsafe(48),
        "jwt_signing_key": secrets.token_urlsafe(48),
        "database_url": f"{database.scheme}://{netloc}/{DATABASE}",
    }
    for name, value in files.items():
        (secret_dir / name).write_text(value)
        (secret_dir / name).chmod(0o644)
    secret_dir.chmod(0o755)
    env = {
        "DJANGO_SECRET_KEY_FILE": "/run/secrets/django_secret_key",
        "JWT_SIGNING_KEY_FILE": "/run/secrets/jwt_signing_key",
        "DATABASE_URL_FILE": "/run/secrets/database_url",
        "REDIS_URL": f"redis://{HOST_LOOPBACK}:{cache.port or 6379}/{REDIS_DB}",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on this machine
        **UNTHROTTLED,
    }
    env_file = base / "env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    common = container_args(secret_dir, env_file)
    names = {role: f"{PREFIX}-{role}" for role in ("rest", "grpc")}
    podman("rm", "--force", "--ignore", *names.values())

    migrated = podman("run", "--rm", *common, IMAGE, "migrate")
    assert "Applying users.0001_initial... OK" in migrated.stdout, migrated.stdout
    admin = Admin(email="img-admin@example.com", password=DEFAULT_PASSWORD)
    admin_env = base / "admin-env"
    # Past the entry point (--entrypoint python), so no *_FILE: the values.
    admin_env.write_text(
        f"DJANGO_SUPERUSER_EMAIL={admin.email}\nDJANGO_SUPERUSER_NAME=Image Admin\n"
        f"DJANGO_SUPERUSER_PASSWORD={admin.password}\n"
        + "".join(f"{name.upper()}={value}\n" for name, value in files.items())
    )
    podman(
        "run", "--rm", *common, "--env-file", str(admin_env),
        "--entrypoint", "python", IMAGE, "manage.py", "createsuperuser", "--noinput",
    )  # fmt: skip

    published = {"rest": f"{REST_PORT}:8000", "grpc": f"{GRPC_PORT}:50051"}
    for role, name in names.items():
        podman(
            "run", "--detach", "--name", name, *common,
            "--publish", f"127.0.0.1:{published[role]}",
            IMAGE, role,
        )  # fmt: skip
    try:
        wait_for(lambda: rest_health_on(REST_PORT) == 200, timeout=60, interval=0.5)
        wait_for(lambda: grpc_health(GRPC_PORT) == SERVING, 60, 0.5)
        yield Deployment(names["rest"], names["grpc"], admin, base, common)
    finally:
        for name in names.values():
            (base / f"{name}.log").write_text(podman("logs", name, check=False).stderr)
            podman("rm", "--force", "--time", "30", name, check=False)


def test_the_containers_run_as_an_unprivileged_uid_on_a_read_only_root(
    deployment: Deployment,
) -> None:
    for name in (deployment.rest, deployment.grpc):
        state = podman(
            "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}} {{.State.Running}}", name
        )
        assert state.stdout.split() == ["true", "true"]
        assert podman("exec", name, "id", "-u").stdout.strip() == UID
        denied = podman("exec", name, "touch", "/app/written", check=False)
        assert denied.returncode != 0
        assert "Read-only file system" in denied.stderr
        written = podman("exec", name, "touch", "/tmp/written", check=False)  # noqa: S108
        assert written.returncode == 0  # the container's own tmpfs


def test_rest_and_grpc_answer_their_health_through_the_published_ports(
    deployment: Deployment,
) -> None:
    assert rest_health_on(REST_PORT) == 200
    assert grpc_health(GRPC_PORT) == SERVING


def test_the_images_healthcheck_is_healthy_for_each_role(deployment: Deployment) -> None:
    # The image's HEALTHCHECK (docker/healthcheck.py, role read from PID 1).
    for name in (deployment.rest, deployment.grpc):
        assert podman("healthcheck", "run", name, check=False).returncode == 0, name
        status = podman("inspect", "--format", "{{.State.Health.Status}}", name)
        assert status.stdout.strip() == "healthy"


def test_the_user_journey_through_the_published_ports(deployment: Deployment) -> None:
    # Login, tokens, users CRUD as the admin, refresh, logout, password change:
    # over REST, then over gRPC, each accepting the other's tokens.
    login = RestApi(REST_PORT).login(
        email=deployment.admin.email, password=deployment.admin.password
    )
    assert "admin" in login.ok()["user"]["roles"]
    run_journeys(REST_PORT, f"127.0.0.1:{GRPC_PORT}", deployment.admin, password=DEFAULT_PASSWORD)


def test_the_logs_hold_no_secret_and_no_error(deployment: Deployment) -> None:
    for name in (deployment.rest, deployment.grpc):
        logs = podman("logs", name).stdout + podman("logs", name).stderr
        for number, line in enumerate(logs.splitlines(), 1):
            assert deployment.admin.password not in line, f"{name}:{number}"
            assert not find_secret(line), f"{name}:{number}: {line}"
            assert "Traceback" not in line, f"{name}:{number}: {line}"
            assert "[ERROR]" not in line, f"{name}:{number}: {line}"


def test_the_built_image_holds_no_build_ca_and_no_build_tools() -> None:
    # The build secret was mounted for one step of the build stage: nothing of
    # it in the runtime image, its history or its configuration.
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE).stdout
    assert "BEGIN CERTIFICATE" not in history
    assert "EXTRA_CA" not in history
    env = json.loads(podman("image", "inspect", "--format", "{{json .Config.Env}}", IMAGE).stdout)
    assert not [item for item in env if "CA_" in item or "CERT" in item], env

    def inside(script: str) -> str:
        return podman(
            "run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE, "-c", script
        ).stdout  # fmt: skip

    assert inside("ls -A /usr/local/share/ca-certificates") == ""  # Debian's CAs only
    assert inside("test -e /run/secrets || echo absent") == "absent\n"
    assert inside("find / -xdev -name 'pip-ca*' 2>/dev/null || true") == ""
    # No compiler and no installer at run time.
    assert inside("command -v gcc cc c++ make pip pip3 || true") == ""


# --- SIGTERM under load -------------------------------------------------------------------


def start_server(deployment: Deployment, role: str, port: int, inner: int) -> str:
    name = f"{PREFIX}-{role}-sigterm"
    podman("rm", "--force", "--ignore", name)
    podman(
        "run", "--detach", "--name", name, *deployment.args,
        "--env", f"REST_GRACEFUL_TIMEOUT={GRACE}", "--env", f"GRPC_SHUTDOWN_GRACE={GRACE}",
        "--publish", f"127.0.0.1:{port}:{inner}", IMAGE, role,
    )  # fmt: skip
    return name


@pytest.fixture
def admin_session(deployment: Deployment) -> tuple[str, str]:
    pair = (
        RestApi(REST_PORT)
        .login(email=deployment.admin.email, password=deployment.admin.password)
        .ok()
    )
    return pair["access"], pair["user"]["id"]


def test_sigterm_to_the_rest_container_under_load(
    deployment: Deployment, admin_session: tuple[str, str]
) -> None:
    # tests/live/test_shutdown.py's check, through the published port: every
    # call answered in full or refused, exit 0 within the grace period.
    from tests.live.test_shutdown import rest_caller

    token, admin_id = admin_session
    credentials = {"email": deployment.admin.email, "password": deployment.admin.password}
    port = REST_PORT + 2
    name = start_server(deployment, "rest", port, 8000)
    try:
        wait_for(lambda: rest_health_on(port) == 200, timeout=60, interval=0.5)
        login = rest_caller(port, "POST", "/api/v1/auth/login", credentials, "", admin_id)
        me = rest_caller(port, "GET", "/api/v1/auth/me", None, token, admin_id)
        sigterm_under_load(name, {"me": resets_too(me), "login": resets_too(login)})
    finally:
        podman("rm", "--force", name, check=False)


def test_sigterm_to_the_grpc_container_under_load(
    deployment: Deployment, admin_session: tuple[str, str]
) -> None:
    from tests.live.test_shutdown import OK, grpc_caller

    token, admin_id = admin_session
    port = GRPC_PORT + 2
    name = start_server(deployment, "grpc", port, 50051)
    channels: list[grpc.Channel] = []
    metadata = bearer(token)
    login = auth_pb2.LoginRequest(email=deployment.admin.email, password=deployment.admin.password)

    def me(stub: auth_pb2_grpc.AuthServiceStub) -> str:
        reply = stub.Me(auth_pb2.MeRequest(), metadata=metadata, timeout=GRACE + 10)
        return OK if reply.id == admin_id else "wrong answer"

    def log_in(stub: auth_pb2_grpc.AuthServiceStub) -> str:
        pair = stub.Login(login, timeout=GRACE + 10)
        return OK if pair.user.id == admin_id and pair.access else "wrong answer"

    try:
        wait_for(lambda: grpc_health(port) == SERVING, 60, 0.5)
        address = f"127.0.0.1:{port}"
        calls = {
            "me": grpc_caller(address, channels, me),
            "login": grpc_caller(address, channels, log_in),
        }
        # grpc/grpc#41785: see tests/live/test_shutdown.py.
        sigterm_under_load(name, calls, unmatched="StatusCode.CANCELLED: CANCELLED")
    finally:
        for channel in channels:
            channel.close()
        podman("rm", "--force", name, check=False)


def test_sigterm_stops_each_server_cleanly(deployment: Deployment) -> None:
    # Last: the servers exit 0 on SIGTERM (they are PID 1: the entry point execs).
    for name in (deployment.rest, deployment.grpc):
        started = time.monotonic()
        podman("stop", "--time", "30", name)
        assert time.monotonic() - started < 25, f"{name} needed SIGKILL"
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", f"{name} exited {code}"
