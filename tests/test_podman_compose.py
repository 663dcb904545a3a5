"""The compose files under podman, checked offline (the container runs
themselves are tests/containers/, ``make containers MODE=...``): the podman
overrides stay minimal, the stand-ins carry the names the compose files use
and behave as the official images' entry points do, and the driver's order
and durations follow the files.
"""

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import gateway as renderer
from tests.containers.compose import PORT_RANGE, Project, duration, free_ports
from tests.test_compose import APP_IMAGE, load

ROOT = Path(__file__).resolve().parent.parent
PODMAN = ROOT / "docker" / "podman"
STANDINS = PODMAN / "standins"
COMPOSE_MODES = ("layered", "microservices")


@pytest.fixture(params=COMPOSE_MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_podman_override_turns_off_the_one_shot_jobs_health_checks_only(mode: str) -> None:
    # podman-compose 1.0.3 ignores `healthcheck: disable: true`; the override
    # says ["NONE"] for exactly those services, and nothing else.
    text = (PODMAN / f"compose.{mode}.yml").read_text()
    override = yaml.safe_load(text)
    disabled = [
        name
        for name, service in load(mode)["services"].items()
        if service.get("healthcheck") == {"disable": True}
    ]
    assert disabled
    assert override == {
        "services": {name: {"healthcheck": {"test": ["NONE"]}} for name in disabled}
    }
    assert "disable: true" in text  # the reason is in the file


def test_every_image_the_compose_files_pull_has_a_stand_in() -> None:
    script = (ROOT / "scripts" / "standins.sh").read_text()
    listed = re.search(r"STANDINS=\(([^)]*)\)", script)
    assert listed
    declared = dict(pair.split("=", 1) for pair in listed[1].split())  # target=name
    pulled = {
        service["image"]
        for mode in ("monolithic", *COMPOSE_MODES)
        for service in load(mode)["services"].values()
        if service["image"] != APP_IMAGE
    }
    assert set(declared.values()) == pulled == {"mysql:8.4", "redis:7", "nginx:1.27"}
    containerfile = (PODMAN / "standins.Containerfile").read_text()
    targets = re.findall(r"^FROM \$\{BASE\} AS (\w+)$", containerfile, re.M)
    assert sorted(targets) == sorted(declared)
    builds = [line for line in script.splitlines() if line.strip().startswith("podman build")]
    assert builds
    assert all("--pull=never" in line for line in builds)


def run_entrypoint(
    name: str, args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A stand-in's entry point with a fake ``redis-server`` / ``nginx`` on
    PATH that prints the arguments it was started with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program in ("redis-server", "nginx"):
        fake = bin_dir / program
        fake.write_text('#!/bin/sh\nprintf "%s|" "$(basename "$0")" "$@"\n')
        fake.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    return subprocess.run(
        [str(STANDINS / name), *args],
        env={"PATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "started"),
    [
        # The compose files' command: protected mode off, as the official image builds it.
        (
            ["redis-server", "--save", "", "--appendonly", "no"],
            "redis-server|--save||--appendonly|no|--protected-mode|no|",
        ),
        (["--port", "7000"], "redis-server|--port|7000|--protected-mode|no|"),
        (["redis-server", "--protected-mode", "yes"], "redis-server|--protected-mode|yes|"),
    ],
)
def test_the_redis_stand_in_starts_redis_as_the_official_image(
    args: list[str], started: str, tmp_path: Path
) -> None:
    done = run_entrypoint("redis-entrypoint.sh", args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == started


def test_the_nginx_stand_in_renders_the_gateway_template_as_the_official_image(
    tmp_path: Path,
) -> None:
    # The environment of docker/compose.microservices.yml's gateway (compose's
    # $$ already resolved), rendered by the entry point's envsubst, is what
    # scripts/gateway.py renders (the template's own renderer).
    gateway = load("microservices")["services"]["gateway"]
    env = {key: str(value).replace("$$", "$") for key, value in gateway["environment"].items()}
    templates, output = tmp_path / "templates", tmp_path / "conf.d"
    templates.mkdir()
    (templates / "arcana.conf.template").write_text(
        (ROOT / "docker" / "nginx" / "arcana.conf.template").read_text()
    )
    settings = {
        "NGINX_ENVSUBST_TEMPLATE_DIR": str(templates),
        "NGINX_ENVSUBST_OUTPUT_DIR": str(output),
    }
    done = run_entrypoint(
        "nginx-entrypoint.sh", ["nginx", "-g", "daemon off;"], tmp_path, env | settings
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("nginx|-g|daemon off;|")
    assert (output / "arcana.conf").read_text() == renderer.render_template(env)


def test_the_mysql_stand_in_takes_what_the_compose_files_give_the_official_image() -> None:
    script = (STANDINS / "mysql-entrypoint.sh").read_text()
    assert subprocess.run(["bash", "-n", str(STANDINS / "mysql-entrypoint.sh")]).returncode == 0
    used: set[str] = set()
    for mode in ("monolithic", *COMPOSE_MODES):
        used |= set(load(mode)["services"]["mysql"].get("environment", {}))
    for name in used:  # MYSQL_ROOT_PASSWORD_FILE, MYSQL_DATABASE, ...
        assert f"file_env {name.removesuffix('_FILE')}" in script, name
    # docker/mysql/init-microservices.sh calls the official image's helper.
    assert "docker_process_sql()" in script
    assert "docker_process_sql" in (ROOT / "docker" / "mysql" / "init-microservices.sh").read_text()
    # Options as the command run mysqld with them; the health check's client is there.
    assert 'set -- mysqld "$@"' in script
    assert "mariadb-client" in (PODMAN / "standins.Containerfile").read_text()


# --- the driver (tests/containers/compose.py) ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0)]
)
def test_compose_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "thirty seconds", "30s "])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a compose duration"):
        duration(text)


def test_the_driver_starts_every_service_after_what_it_depends_on(mode: str) -> None:
    project = Project(mode, {})
    order = project.start_order()
    assert sorted(order) == sorted(load(mode)["services"])
    for position, service in enumerate(order):
        assert set(project.depends(service)) <= set(order[:position]), service
    assert order[-1] in {"rest", "grpc", "gateway"}  # the public edge last
    app: dict[str, Any] = load(mode)["services"]
    assert {project.grace(s) for s in project.apps()} == {30.0}  # x-app's stop_grace_period
    assert project.grace("mysql") == 10.0  # compose's default
    assert set(project.long_running()) == {s for s in app if app[s].get("restart") != "no"}


def test_free_ports_stay_in_the_range_given_to_this_suite() -> None:
    ports = free_ports(3, 18090)
    assert len(set(ports)) == 3
    assert all(port in PORT_RANGE for port in ports)
