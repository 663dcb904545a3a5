"""``make run MODE=layered`` and ``MODE=microservices`` as a developer runs
them: ``scripts/run.sh`` (honcho, procfiles/<mode>.Procfile, scripts/tier.sh
or scripts/service.sh and the nginx gateway) on side ports and SQLite files of
this test's, the admin made by ``make superuser MODE=... NOINPUT=1``'s
command, the end-to-end flow through the public REST and gRPC ports, then
Ctrl-C, which must stop every process it started."""

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests.commands import ROOT, child_env, run_service, run_tier
from tests.factories import DEFAULT_PASSWORD
from tests.live.flow import JOURNEY_DEADLINE, Admin, run_journeys
from tests.support.servers import free_port, grpc_serving, http_ok

STARTUP_TIMEOUT = 90  # migrate + five Django processes on a busy 2-core machine
STOP_TIMEOUT = 20
DEVELOPMENT = "arcana.settings.local"


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    ports: dict[str, int]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise AssertionError(f"run.sh exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {timeout}s:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def process_tree(root: int) -> dict[int, tuple[str, dict[str, str]]]:
    """pid -> (command line, environment) of ``root`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(child for child, parent in parents.items() if parent == pid)
    tree = {}
    for pid in found:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(item.decode(errors="replace").partition("=")[::2] for item in raw if item)
        tree[pid] = (" ".join(part.decode(errors="replace") for part in argv if part), env)
    return tree


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def status_of(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_run(env: dict[str, str], ports: dict[str, int], log: Path) -> Run:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job is
        )
    return Run(process, env, ports, log)


def kill_run(run: Run) -> None:
    if run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGKILL)
        for pid in process_tree(run.process.pid):
            os.kill(pid, signal.SIGKILL)
        run.process.wait(timeout=10)


def run_env(tmp_path: Path, mode: str, ports: dict[str, int]) -> dict[str, str]:
    # make run's settings: manage.py's default, development.
    env = child_env(DEVELOPMENT)
    env.update(
        MODE=mode,
        CACHE_DIR=str(tmp_path / "cache"),  # throttle counters of this run only
        THROTTLE_LOGIN="1000/min",
        THROTTLE_REGISTER="1000/min",
        PYTHONUNBUFFERED="1",
        **JOURNEY_DEADLINE,
        **{name: str(port) for name, port in ports.items()},
    )
    return env


@pytest.fixture
def layered_run(tmp_path: Path) -> Iterator[Run]:
    ports = {name: free_port() for name in ("PORT", "GRPC_PORT", "ADMIN_PORT")}
    ports.update(SERVICE_PORT=free_port(), REPOSITORY_PORT=free_port())
    env = run_env(tmp_path, "layered", ports)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'layered.sqlite3'}"
    run = start_run(env, ports, tmp_path / "run.log")
    try:
        yield run
    finally:
        kill_run(run)


MICROSERVICES_PORTS = (
    "PORT",
    "GRPC_PORT",
    "USERS_PORT",
    "AUTH_PORT",
    "USERS_GRPC_PORT",
    "AUTH_GRPC_PORT",
    "USERS_INTERNAL_PORT",
    "AUTH_INTERNAL_PORT",
)


@pytest.fixture
def microservices_run(tmp_path: Path) -> Iterator[Run]:
    ports = {name: free_port() for name in MICROSERVICES_PORTS}
    env = run_env(tmp_path, "microservices", ports)
    env["USERS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    env["AUTH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'auth.sqlite3'}"
    env["GATEWAY_DIR"] = str(tmp_path / "nginx")
    run = start_run(env, ports, tmp_path / "run.log")
    try:
        yield run
    finally:
        kill_run(run)


def superuser(
    command: Callable[..., subprocess.CompletedProcess[str]], run: Run, database: str
) -> Admin:
    """``createsuperuser --noinput`` as ``make superuser NOINPUT=1`` runs it,
    where the users' data lives (``command``: scripts/tier.sh or service.sh),
    on the run's database (the variable ``database``) and cache."""
    admin = Admin(email="root@e2e.example.com", password=DEFAULT_PASSWORD)
    created = command(
        "createsuperuser",
        "--noinput",
        settings=DEVELOPMENT,
        env={
            database: run.env[database],
            "CACHE_DIR": run.env["CACHE_DIR"],
            "DJANGO_SUPERUSER_EMAIL": admin.email,
            "DJANGO_SUPERUSER_NAME": "Root Admin",
            "DJANGO_SUPERUSER_PASSWORD": admin.password,
        },
    )
    assert created.returncode == 0, created.stdout + created.stderr
    return admin


def mail_sent_by_the_worker(run: Run) -> None:
    """The journeys registered users: the Procfile's worker sent each a
    verification mail (development settings: to the console, i.e. the log)."""
    run.wait_until(
        lambda: "Subject: Confirm your email address" in run.log_text(),
        STARTUP_TIMEOUT,
        "a verification mail from the worker",
    )


def ctrl_c_stops_everything(run: Run, tree: dict[int, tuple[str, dict[str, str]]]) -> None:
    """Ctrl-C: the terminal sends SIGINT to the whole foreground process group."""
    os.killpg(run.process.pid, signal.SIGINT)
    run.process.wait(timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while (survivors := [pid for pid in tree if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, {pid: tree[pid][0] for pid in survivors}
    assert all(refuses(port) for port in run.ports.values()), run.tail()
    assert "Traceback" not in run.log_text(), run.tail()


def test_make_run_layered_serves_the_flow_and_ctrl_c_stops_everything(layered_run: Run) -> None:
    run, ports = layered_run, layered_run.ports
    grpc_address = f"127.0.0.1:{ports['GRPC_PORT']}"
    run.wait_until(http_ok(ports["PORT"], "/readyz"), STARTUP_TIMEOUT, "REST /readyz 200")
    run.wait_until(grpc_serving(grpc_address), STARTUP_TIMEOUT, "gRPC health SERVING")
    run.wait_until(http_ok(ports["ADMIN_PORT"], "/admin/login/"), STARTUP_TIMEOUT, "the admin")
    assert status_of(ports["PORT"], "/admin/login/") == 404  # the edge has no admin

    # What `make superuser MODE=layered NOINPUT=1` runs, beside the running tiers.
    admin = superuser(partial(run_tier, "repository"), run, "DATABASE_URL")

    run_journeys(ports["PORT"], grpc_address, admin, password=DEFAULT_PASSWORD)
    mail_sent_by_the_worker(run)

    # Each Django process holds only what its tier may: the database for the
    # repository tier (tierserver and the admin), nothing of it above.
    tree = process_tree(run.process.pid)
    django = {
        pid: env for pid, (argv, env) in tree.items() if "manage.py" in argv and "python" in argv
    }
    by_tier: dict[str, list[bool]] = {}
    for env in django.values():
        by_tier.setdefault(env.get("ARCANA_TIER", "?"), []).append("DATABASE_URL" in env)
    assert by_tier == {
        "repository": [True, True, True],  # tierserver, the admin, the mail worker
        "service": [False],
        "controller": [False, False],
    }, by_tier
    for env in django.values():
        if env["ARCANA_TIER"] == "repository":
            assert env["DATABASE_URL"] == run.env["DATABASE_URL"]
        assert ("JWT_PRIVATE_KEY" in env) == (env["ARCANA_TIER"] == "service")

    ctrl_c_stops_everything(run, tree)


def test_make_run_microservices_serves_the_flow_through_the_gateway(
    microservices_run: Run,
) -> None:
    run, ports = microservices_run, microservices_run.ports
    grpc_address = f"127.0.0.1:{ports['GRPC_PORT']}"
    run.wait_until(http_ok(ports["USERS_PORT"], "/readyz"), STARTUP_TIMEOUT, "users /readyz")
    run.wait_until(http_ok(ports["AUTH_PORT"], "/readyz"), STARTUP_TIMEOUT, "auth /readyz")
    run.wait_until(grpc_serving(grpc_address), STARTUP_TIMEOUT, "gRPC health at the gateway")
    run.wait_until(http_ok(ports["USERS_PORT"], "/admin/login/"), STARTUP_TIMEOUT, "the admin")

    # What `make superuser MODE=microservices NOINPUT=1` runs, beside the running services.
    admin = superuser(partial(run_service, "users"), run, "USERS_DATABASE_URL")

    run_journeys(ports["PORT"], grpc_address, admin, password=DEFAULT_PASSWORD)
    mail_sent_by_the_worker(run)

    # Each service's processes hold its own database and key, and nothing of the other's.
    tree = process_tree(run.process.pid)
    django = [env for argv, env in tree.values() if "manage.py" in argv and "python" in argv]
    by_service: dict[str, set[tuple[str, str]]] = {}
    for env in django:
        key = "JWT_PRIVATE_KEY" if "JWT_PRIVATE_KEY" in env else "JWT_PUBLIC_KEY"
        by_service.setdefault(env["ARCANA_SERVICE"], set()).add((env["DATABASE_URL"], key))
    assert by_service == {
        "users": {(run.env["USERS_DATABASE_URL"], "JWT_PUBLIC_KEY")},
        "auth": {(run.env["AUTH_DATABASE_URL"], "JWT_PRIVATE_KEY")},
    }, by_service
    assert len(django) == 7  # REST, gRPC and internal server of each; users' mail worker
    assert any("nginx" in argv for argv, _ in tree.values())

    ctrl_c_stops_everything(run, tree)
