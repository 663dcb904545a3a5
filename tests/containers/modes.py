"""The checks every compose mode's containers pass (layered and microservices:
tests/containers/test_layered.py, test_microservices.py, each a subclass of
:class:`ComposeChecks` with its own module-scoped ``project`` and ``admin``
fixtures).
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.compose import DOCKER, Project, free_ports, running
from tests.containers.podman import GRACE, podman
from tests.factories import DEFAULT_PASSWORD
from tests.live.flow import Admin, RestApi, run_journeys
from tests.secret_scan import find_secret
from tests.support.stack import GENEROUS_RATE
from tests.test_compose import DATA_HOLDERS

UID = "10001"  # the image's arcana user
DB_SECRET = re.compile(r"database_url|db_password|mysql_password|mysql_root_password")
# The journeys log in and register more often than production's limits allow:
# a test-only override (never in docker/) raises them. The SIGTERM tests check
# an exit within tests/live/test_shutdown.py's grace, as the monolithic
# container test sets it (the compose default: 20 s for the REST server, 10 s for
# gRPC, within the 30 s stop_grace_period). The internal deadline stays below
# that grace, as production's 2 s is below its 10 s: a gRPC handler waiting on
# the tier below outlives a stop() that has given up on it (Python cannot
# cancel the thread), and a worker whose handler still waits cannot exit.
# Measured: with flow.py's 20 s journey deadline, a call stuck behind the
# service tier under load kept one grpcrunserver worker past grace + 5 s, so
# its supervisor killed it and exited 1. GRACE - 1 s still leaves a login's
# Argon2 hash on a loaded 2-core machine ample time.
TEST_ENV = {
    name: GENEROUS_RATE
    for name in ("THROTTLE_LOGIN", "THROTTLE_REGISTER", "THROTTLE_REFRESH", "THROTTLE_PASSWORD")
} | {
    "LOGIN_LOCKOUT_FAILURES": "1000000",
    "LOGIN_LOCKOUT_ACCOUNT_FAILURES": "1000000",
    "ARCANA_INTERNAL_DEADLINE": str(GRACE - 1),
    "REST_GRACEFUL_TIMEOUT": str(GRACE),
    "GRPC_SHUTDOWN_GRACE": str(GRACE),
}


def bring_up(
    mode: str, published: list[str], request: pytest.FixtureRequest, image: str
) -> Iterator[Project]:
    """The mode's project, up for a test module; ``published`` names the
    ARCANA_PUBLISH_* variables, each given a free port on 127.0.0.1."""
    assert podman("image", "exists", image, check=False).returncode == 0, (
        f"no image {image}: make image builds it"
    )
    tmp: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    directory = tmp.mktemp(f"compose-{mode}")
    subprocess_secrets()
    first = {"layered": 18010, "microservices": 18020}.get(mode, 18000)
    ports = free_ports(len(published), first)
    env = {name: f"127.0.0.1:{port}" for name, port in zip(published, ports, strict=True)}
    project = Project(mode, env | {"ARCANA_IMAGE": image})
    override = directory / "test-override.yml"
    override.write_text(
        "# Test-only: limits the journeys exceed (tests/containers/modes.py).\n"
        + yaml.safe_dump({"services": {name: {"environment": TEST_ENV} for name in project.apps()}})
    )
    project.extra = [override]
    yield from running(project, directory, request.config)


def subprocess_secrets() -> None:
    """docker/secrets/ as ``make compose-secrets`` makes it (existing files kept)."""
    from scripts.compose_secrets import DEFAULT_DIR, generate

    generate(DEFAULT_DIR)


def port(project: Project, variable: str) -> int:
    return int(project.env[variable].rsplit(":", 1)[1])


def create_admin(project: Project, service: str) -> Admin:
    """The first admin, made where the users' data lives: the entry point's
    ``manage`` role in that running container (it reads the *_FILE secrets)."""
    admin = Admin(email=f"{project.mode}-admin@example.com", password=DEFAULT_PASSWORD)
    podman(
        "exec",
        *("--env", f"DJANGO_SUPERUSER_EMAIL={admin.email}"),
        *("--env", "DJANGO_SUPERUSER_NAME=Compose Admin"),
        *("--env", f"DJANGO_SUPERUSER_PASSWORD={admin.password}"),
        project.container(service),
        *("/app/docker/entrypoint.sh", "manage", "createsuperuser", "--noinput"),
    )
    return admin


def environment(info: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in info["Config"]["Env"])


def database_credentials(info: dict[str, Any]) -> list[str]:
    """What of a container (``podman inspect``) gives it a database:
    variables, and secrets mounted at /run/secrets/."""
    found = [
        name
        for name in environment(info)
        if name.startswith("DATABASE_URL") or (name.startswith("MYSQL") and "PASSWORD" in name)
    ]
    found += [
        mount["Destination"]
        for mount in info["Mounts"]
        if mount["Destination"].startswith("/run/secrets/")
        and DB_SECRET.search(Path(mount["Destination"]).name)
    ]
    return found


def secret_values() -> list[str]:
    return [path.read_text().strip() for path in (DOCKER / "secrets").iterdir() if path.is_file()]


class ComposeChecks:
    """What every compose mode's containers must show (not collected itself:
    each mode's ``TestX(ComposeChecks)`` is)."""

    REST: str = "ARCANA_PUBLISH_REST"
    GRPC: str = "ARCANA_PUBLISH_GRPC"

    def test_every_container_reports_healthy(self, project: Project) -> None:
        for service in project.services:
            state = project.state(service)
            if service in project.long_running():
                # The compose health check of its role (docker/healthcheck.py for
                # the app, mysqladmin, redis-cli, curl), run by podman.
                assert state["Status"] == "running", service
                assert project.healthy(service), service
                assert project.state(service)["Health"]["Status"] == "healthy", service
            else:  # a one-shot migrate job: exited 0, no health check (the override)
                assert (state["Status"], state["ExitCode"]) == ("exited", 0), service
                assert (
                    podman("healthcheck", "run", project.container(service), check=False).returncode
                    != 0
                )

    def test_the_app_containers_run_as_an_unprivileged_uid_on_a_read_only_root(
        self, project: Project
    ) -> None:
        for service in project.apps():
            info = project.inspect(service)
            assert info["HostConfig"]["ReadonlyRootfs"] is True, service
            assert info["Config"]["User"] == "arcana", service
            if service not in project.long_running():
                continue
            name = project.container(service)
            assert podman("exec", name, "id", "-u").stdout.strip() == UID, service
            denied = podman("exec", name, "touch", "/app/written", check=False)
            assert "Read-only file system" in denied.stderr, service
            assert podman("exec", name, "touch", "/tmp/written").returncode == 0  # noqa: S108  (its tmpfs)

    def test_mysql_and_redis_run_unprivileged_as_in_the_official_images(
        self, project: Project
    ) -> None:
        # uid 999 (the stand-ins keep the official images' users); the nginx
        # gateway's master runs as root there too, its workers as www-data.
        for service in ("mysql", "redis"):
            assert podman("exec", project.container(service), "id", "-u").stdout.strip() == "999"

    def test_only_the_data_holders_get_database_credentials(self, project: Project) -> None:
        holders = {s for s in project.services if database_credentials(project.inspect(s))}
        assert holders == DATA_HOLDERS[project.mode]
        values = secret_values()
        for service in project.services:
            env = environment(project.inspect(service))
            for name, value in env.items():  # secrets as files, never as values
                assert not any(secret in value for secret in values if len(secret) > 8), (
                    service,
                    name,
                )
                assert "mysql://" not in value, (service, name)

    def test_the_user_journey_through_the_published_ports(
        self, project: Project, admin: Admin
    ) -> None:
        # Login, tokens, users CRUD as the admin, refresh, logout, password
        # change: over REST, then over gRPC, each accepting the other's tokens.
        rest, grpc = port(project, self.REST), port(project, self.GRPC)
        login = RestApi(rest).login(email=admin.email, password=admin.password)
        assert "admin" in login.ok()["user"]["roles"]
        run_journeys(rest, f"127.0.0.1:{grpc}", admin, password=DEFAULT_PASSWORD)

    def test_the_app_logs_hold_no_secret_and_no_error(self, project: Project, admin: Admin) -> None:
        for service in project.apps():
            for number, line in enumerate(project.logs(service).splitlines(), 1):
                where = f"{project.container(service)}:{number}: {line}"
                assert admin.password not in line, where
                assert not find_secret(line), where
                assert "Traceback" not in line, where
                assert "[ERROR]" not in line, where
