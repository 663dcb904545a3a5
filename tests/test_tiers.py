"""Layered mode's tiers as processes, started the way ``make run MODE=layered``
and ``make superuser MODE=layered`` start them: ``scripts/tier.sh TIER COMMAND``,
which gives each process only its tier's environment."""

import select
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.commands import ROOT, TIER_SH, child_env, command_error, refusal, run_manage, run_tier

SETTINGS = "arcana.settings.test"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REPOSITORY = "arcana.internal.v1.Repository"
SERVICE = "arcana.internal.v1.Service"
# The health watchers look at the tier below this often (seconds).
HEALTH_INTERVAL = 0.2
SUPERUSER = {
    "DJANGO_SUPERUSER_EMAIL": "Root@Example.COM",
    "DJANGO_SUPERUSER_NAME": "Root",
    "DJANGO_SUPERUSER_PASSWORD": "a long and unusual passphrase 42",
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file, as ``make run MODE=layered`` migrates the repository tier."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tiers') / 'db.sqlite3'}"
    result = run_tier("repository", "migrate", "--noinput", "-v", "0", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return url


# --- commands that belong to other tiers -----------------------------------------------


def test_tierserver_refuses_monolithic_mode() -> None:
    assert command_error(run_manage("tierserver")) == (
        "tierserver runs the service or repository tier (ARCANA_MODE=layered, "
        "ARCANA_TIER=service|repository) or a microservice's internal server "
        "(ARCANA_MODE=microservices), not monolithic mode."
    )


def test_tierserver_refuses_the_controller_tier() -> None:
    assert command_error(run_tier("controller", "tierserver")) == (
        "tierserver runs the service or repository tier (ARCANA_MODE=layered, "
        "ARCANA_TIER=service|repository) or a microservice's internal server "
        "(ARCANA_MODE=microservices), not the controller tier."
    )


@pytest.mark.parametrize("tier", ["service", "repository"])
def test_grpcrunserver_refuses_the_inner_tiers(tier: str) -> None:
    assert command_error(run_tier(tier, "grpcrunserver")) == (
        "The public gRPC server runs in monolithic mode or the controller tier; "
        f"the {tier} tier runs `manage.py tierserver`."
    )


@pytest.mark.parametrize("tier", ["controller", "service"])
def test_createsuperuser_refuses_the_tiers_without_the_database(tier: str) -> None:
    result = run_tier(tier, "createsuperuser", "--noinput", env=SUPERUSER)
    assert command_error(result) == (
        "createsuperuser runs where the users' data lives: the repository tier, "
        f"not the {tier} tier (make superuser MODE=layered)."
    )


def test_createsuperuser_works_on_the_repository_tier(database: str, tmp_path: Path) -> None:
    """``make superuser MODE=layered NOINPUT=1``, on the development settings it uses."""
    env = {**SUPERUSER, "DATABASE_URL": database, "CACHE_DIR": str(tmp_path)}
    result = run_tier(
        "repository", "createsuperuser", "--noinput", settings="arcana.settings.local", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Superuser created successfully." in result.stdout
    with sqlite3.connect(database.removeprefix("sqlite:///")) as db:
        rows = db.execute(
            "SELECT u.email, u.is_superuser, u.is_staff, r.role_id FROM users_user u "
            "JOIN users_user_roles r ON r.user_id = u.id ORDER BY r.role_id"
        ).fetchall()
    assert rows == [("root@example.com", 1, 1, "admin"), ("root@example.com", 1, 1, "user")]


# --- tierserver -----------------------------------------------------------------------------


class Tier:
    """One ``scripts/tier.sh TIER tierserver`` process."""

    def __init__(self, tier: str, address: str, env: dict[str, str], log: Path) -> None:
        self.tier = tier
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [TIER_SH, tier, "tierserver", address],
            cwd=ROOT,
            env=child_env(SETTINGS, env),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.port = self._listening_port(timeout=30)

    def _listening_port(self, timeout: float) -> int:
        """The port from the ready line: "<tier> tier listening on port N (...)"."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if not ready:
                continue
            line = self.process.stdout.readline()
            if not line:
                break  # exited
            if line.startswith(f"{self.tier} tier listening on port "):
                return int(line.split()[5])
        raise AssertionError(f"{self.tier} tier did not start: {self.output()}")

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text()

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@pytest.fixture
def start_tier(tmp_path: Path) -> Iterator[Callable[..., Tier]]:
    started: list[Tier] = []

    def start(tier: str, address: str = "127.0.0.1:0", **env: str) -> Tier:
        environment = {
            "GRPC_HEALTH_INTERVAL": str(HEALTH_INTERVAL),
            "GRPC_SHUTDOWN_GRACE": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        process = Tier(tier, address, environment, tmp_path / f"{tier}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:  # never leave a server behind, whatever failed
        process.close()


def health(port: int, service: str) -> int | None:
    """The health status for ``service``, or None when nothing answers."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError:
            return None
        return int(reply.status)


def wait_health(port: int, service: str, wanted: int, timeout: float = 10) -> int | None:
    deadline = time.monotonic() + timeout
    status = health(port, service)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        status = health(port, service)
    return status


def test_the_service_tier_is_serving_while_its_repository_tier_is(
    database: str, start_tier: Callable[..., Tier]
) -> None:
    start = start_tier
    repository = start("repository", DATABASE_URL=database)
    assert health(repository.port, REPOSITORY) == SERVING
    below = f"127.0.0.1:{repository.port}"
    service = start("service", ARCANA_REPOSITORY_ADDR=below)
    assert wait_health(service.port, SERVICE, SERVING) == SERVING
    assert health(service.port, "") == SERVING

    assert repository.stop() == 0, repository.output()
    assert health(repository.port, REPOSITORY) is None
    assert wait_health(service.port, SERVICE, NOT_SERVING) == NOT_SERVING
    assert health(service.port, "") == NOT_SERVING
    assert "readiness: repository unavailable" in service.output()

    again = start("repository", below, DATABASE_URL=database)
    assert again.port == repository.port
    assert wait_health(service.port, SERVICE, SERVING) == SERVING
    assert "readiness: repository available again" in service.output()

    assert service.stop() == 0, service.output()
    assert again.stop() == 0, again.output()


def test_tierserver_refuses_plaintext_unless_told(database: str) -> None:
    env = {"DATABASE_URL": database, "ARCANA_INTERNAL_INSECURE": "false"}
    assert refusal(run_tier("repository", "tierserver", "127.0.0.1:0", env=env)) == (
        "internal calls need mutual TLS (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA) "
        "or ARCANA_INTERNAL_INSECURE=true"
    )
