"""The compose files (docker/compose.<mode>.yml): valid for docker-compose, and
who gets which secret.

No container engine runs here, so this is what can be checked offline:
``docker-compose config -q`` (Debian's docker-compose, installed by
``scripts/bootstrap.sh --dev``) validates each file against the Compose
schema, and the YAML itself is read for the invariants of
docs in README "Docker Compose": database credentials only in the containers
that hold data, the JWT private key only where tokens are minted, internal
TLS on every internal hop, a health check on every service, the migrate step
before the servers, and no secret value in any file.
"""

import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.commands import run_manage

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
MODES = ("monolithic", "layered", "microservices")
APP_IMAGE = "${ARCANA_IMAGE:-arcana:latest}"
ROLES = ("rest", "grpc", "tier", "migrate", "worker")
DB_SECRET = re.compile(r"database_url|db_password|mysql_password|mysql_root_password")

# Who may hold what, per mode: the design of the deployment modes.
USERS = {"users-migrate", "users-tier", "users-rest", "users-grpc", "users-worker"}
AUTH = {"auth-migrate", "auth-tier", "auth-rest", "auth-grpc"}
DATA_HOLDERS = {
    "monolithic": {"mysql", "migrate", "rest", "grpc", "worker"},
    "layered": {"mysql", "migrate", "repository", "admin", "worker"},
    "microservices": {"mysql"} | USERS | AUTH,
}
PRIVATE_KEY = {"monolithic": set(), "layered": {"service"}, "microservices": AUTH}
SIGNING_KEY = {
    "monolithic": {"migrate", "rest", "grpc", "worker"},
    "layered": set(),
    "microservices": set(),
}
INTERNAL_TLS = {
    "monolithic": set(),
    "layered": {"rest", "grpc", "service", "repository"},
    "microservices": (USERS | AUTH) - {"users-migrate", "auth-migrate"},
}
# The services with the public ports.
EDGE: dict[str, dict[str, set[int]]] = {
    "monolithic": {"rest": {8000}, "grpc": {50051}},
    "layered": {"rest": {8000}, "grpc": {50051}},
    "microservices": {"gateway": {8000, 50051}},
}


def load(mode: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCKER / f"compose.{mode}.yml").read_text())
    return document


def text(mode: str) -> str:
    return (DOCKER / f"compose.{mode}.yml").read_text()


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def secrets_of(service: dict[str, Any]) -> set[str]:
    return {
        item if isinstance(item, str) else item["source"] for item in service.get("secrets", [])
    }


def role(service: dict[str, Any]) -> str | None:
    command = service.get("command")
    return command[0] if service.get("image") == APP_IMAGE and command else None


def apps(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in document["services"].items() if s.get("image") == APP_IMAGE}


def depends(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    assert isinstance(raw, dict), "depends_on must name a condition for every dependency"
    return {name: spec["condition"] for name, spec in raw.items()}


def reachable(document: dict[str, Any], start: str) -> Iterator[tuple[str, str]]:
    """(dependency, condition) for everything ``start`` waits for, transitively."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for name, condition in depends(document["services"][todo.pop()]).items():
            yield name, condition
            if name not in seen:
                seen.add(name)
                todo.append(name)


# The host side of a published port: ${ARCANA_PUBLISH_<NAME>:-[ADDRESS:]PORT}.
PUBLISH = re.compile(r"^\$\{(?P<name>ARCANA_PUBLISH_[A-Z]+):-(?P<default>[^}]+)\}$")


def host_sides(service: dict[str, Any]) -> dict[str, str]:
    """Each published port's variable and its default host side ([ADDRESS:]PORT)."""
    sides = {}
    for port in service.get("ports", []):
        host, _, inner = str(port).rpartition(":")
        match = PUBLISH.match(host)
        assert match, f"{port}: the host side is ${{ARCANA_PUBLISH_<NAME>:-[ADDRESS:]PORT}}"
        assert inner.isdigit(), port
        sides[match["name"]] = match["default"]
    return sides


def published(service: dict[str, Any]) -> set[int]:
    return {int(side.rsplit(":", 1)[-1]) for side in host_sides(service).values()}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- docker-compose validates each file ----------------------------------------------


BROKEN = "broken"  # a copy of the layered file with a misspelt option


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """(exit status, stderr) of ``docker-compose -f FILE config -q`` per mode,
    and for a broken copy; run side by side (each takes seconds to start)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: scripts/bootstrap.sh --dev installs it")
    broken = tmp_path_factory.mktemp("compose") / "compose.yml"
    source = text("layered")
    assert "condition: service_completed_successfully" in source
    broken.write_text(source.replace("condition: service_completed_successfully", "conditon: x"))
    paths = {mode: DOCKER / f"compose.{mode}.yml" for mode in MODES} | {BROKEN: broken}
    running = {
        name: subprocess.Popen(
            [binary, "-f", str(path), "config", "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, path in paths.items()
    }
    results = {}
    for name, process in running.items():
        _, stderr = process.communicate(timeout=120)
        results[name] = (process.returncode, stderr)
    return results


def test_docker_compose_accepts_the_file(mode: str, configs: dict[str, tuple[int, str]]) -> None:
    status, stderr = configs[mode]
    assert status == 0, stderr


def test_docker_compose_config_rejects_a_broken_file(configs: dict[str, tuple[int, str]]) -> None:
    # What makes the check above worth having: a misspelt option is an error.
    status, stderr = configs[BROKEN]
    assert status != 0
    assert "conditon" in stderr


def test_compose_check_script_validates_every_file() -> None:
    script = (ROOT / "scripts" / "compose_check.sh").read_text()
    assert "apt-get install -y" in script
    assert "docker-compose" in script
    assert "config -q" in script
    assert sorted(p.name for p in DOCKER.glob("compose.*.yml")) == sorted(
        f"compose.{m}.yml" for m in MODES
    )


# --- secrets -------------------------------------------------------------------------


def test_database_credentials_only_where_the_data_is(mode: str) -> None:
    document = load(mode)
    holders = {
        name
        for name, service in document["services"].items()
        if any(DB_SECRET.search(secret) for secret in secrets_of(service))
        or {"DATABASE_URL", "DATABASE_URL_FILE"} & env(service).keys()
        or any("PASSWORD" in key for key in env(service))
    }
    assert holders == DATA_HOLDERS[mode]


def test_each_microservice_gets_its_own_database() -> None:
    document = load("microservices")
    for names, own, other in ((USERS, "users", "auth"), (AUTH, "auth", "users")):
        for name in names:
            service = document["services"][name]
            assert env(service)["DATABASE_URL_FILE"] == f"/run/secrets/{own}_database_url"
            assert f"{own}_database_url" in secrets_of(service)
            assert not any(secret.startswith(other) for secret in secrets_of(service)), name
            assert env(service)["ARCANA_SERVICE"] == own
    mysql = document["services"]["mysql"]
    assert secrets_of(mysql) == {"mysql_root_password", "users_db_password", "auth_db_password"}
    init = [v for v in mysql["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init == ["./mysql/init-microservices.sh:/docker-entrypoint-initdb.d/10-databases.sh:ro"]


def test_jwt_keys_only_where_tokens_are_minted(mode: str) -> None:
    services = load(mode)["services"]
    private = {
        name
        for name, s in services.items()
        if "JWT_PRIVATE_KEY" in env(s) or "jwt_private_key" in secrets_of(s)
    }
    signing = {
        name
        for name, s in services.items()
        if {"JWT_SIGNING_KEY", "JWT_SIGNING_KEY_FILE"} & env(s).keys()
        or "jwt_signing_key" in secrets_of(s)
    }
    assert private == PRIVATE_KEY[mode]
    assert signing == SIGNING_KEY[mode]
    for name, service in apps(load(mode)).items():
        if mode == "layered" and env(service)["ARCANA_TIER"] == "controller":
            assert env(service)["JWT_PUBLIC_KEY"] == "/run/secrets/jwt_public_key", name
        if mode == "layered" and env(service)["ARCANA_TIER"] == "repository":
            assert not any("JWT" in key for key in env(service)), name


def test_internal_tls_on_every_internal_hop(mode: str) -> None:
    services = load(mode)["services"]
    with_tls = {n for n, s in services.items() if any("INTERNAL_TLS" in k for k in env(s))}
    assert with_tls == INTERNAL_TLS[mode]
    for name in with_tls:
        variables = env(services[name])
        assert "ARCANA_INTERNAL_INSECURE" not in variables
        files = [variables[f"ARCANA_INTERNAL_TLS_{part}"] for part in ("CERT", "KEY", "CA")]
        cert, key, ca = (path.removeprefix("/run/secrets/") for path in files)
        assert ca == "internal_ca"
        assert cert.removesuffix("_cert") == key.removesuffix("_key"), name
        assert {cert, key, ca} <= secrets_of(services[name]), name


# Named like secrets, but public: the client's page that reset links open.
PUBLIC = {"PASSWORD_RESET_URL"}


def test_secrets_are_referenced_never_written(mode: str) -> None:
    document = load(mode)
    declared = document["secrets"]
    used: set[str] = set()
    for name, service in document["services"].items():
        used |= secrets_of(service)
        for key, value in env(service).items():
            if value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in secrets_of(service), (name, key)
            elif re.search(r"KEY|PASSWORD|SECRET|TOKEN|DATABASE_URL", key) and key not in PUBLIC:
                pytest.fail(f"{name}: {key} must name a file under /run/secrets/, not hold a value")
    assert used == set(declared), "every declared secret is used, every used one declared"
    for secret in declared.values():
        assert set(secret) == {"file"}
        assert secret["file"].startswith("./secrets/")  # docker/secrets/: git-ignored
    source = text(mode)
    assert "-----BEGIN" not in source
    assert not re.search(r"://[^/\s:@]+:[^@\s]+@", source), "credentials in a URL"


def test_secret_files_stay_out_of_git_and_the_image() -> None:
    assert "docker/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"docker/secrets", ".dev-keys", ".env"} <= set(ignored)


# --- health, order, networks, ports ----------------------------------------------------


def test_every_service_has_a_health_check(mode: str) -> None:
    for name, service in load(mode)["services"].items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if role(service) == "migrate":
            # A one-shot job: nothing to probe; servers wait for it to exit 0.
            assert check == {"disable": True}, name
            assert service["restart"] == "no", name
            continue
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        if role(service) is not None:
            assert check["test"][1:] == ["python", "/app/docker/healthcheck.py", role(service)]


def test_migrate_runs_before_every_server(mode: str) -> None:
    document = load(mode)
    for name, service in apps(document).items():
        assert role(service) in ROLES, name
        if role(service) == "migrate":
            assert depends(service).get("mysql") == "service_healthy"
            continue
        waits = dict(reachable(document, name))
        migrates = [dep for dep, c in waits.items() if c == "service_completed_successfully"]
        assert migrates, f"{name} starts without waiting for a migrate step"
        for dep in migrates:
            assert role(document["services"][dep]) == "migrate", (name, dep)
        if name in DATA_HOLDERS[mode]:
            # The migration of its own database, directly.
            own = next(d for d, c in depends(service).items() if c.startswith("service_completed"))
            database = env(service)["DATABASE_URL_FILE"]
            assert env(document["services"][own])["DATABASE_URL_FILE"] == database
            assert depends(service)["mysql"] == "service_healthy"


def test_dependencies_wait_for_health(mode: str) -> None:
    document = load(mode)
    for name, service in document["services"].items():
        for dep, condition in depends(service).items():
            target = document["services"][dep]
            if role(target) == "migrate":
                assert condition == "service_completed_successfully", (name, dep)
            else:
                assert condition == "service_healthy", (name, dep)


def test_only_data_holders_reach_mysql(mode: str) -> None:
    document = load(mode)
    assert document["services"]["mysql"]["networks"] == ["data"]
    assert document["networks"]["data"] == {"internal": True}
    on_data = {n for n, s in document["services"].items() if "data" in s.get("networks", [])}
    assert on_data == DATA_HOLDERS[mode]


def test_peers_are_tier_servers_on_a_shared_network(mode: str) -> None:
    document = load(mode)
    services = document["services"]
    peers = 0
    for name, service in apps(document).items():
        if role(service) == "tier":
            assert env(service)["TIER_PORT"].isdigit(), name
        for key, value in env(service).items():
            if not key.endswith("_ADDR"):
                continue
            peers += 1
            host, port = value.rsplit(":", 1)
            assert role(services[host]) == "tier", (name, key)
            assert env(services[host])["TIER_PORT"] == port, (name, key)
            if role(service) == "migrate":
                continue  # a migrate step calls no peer (its settings may check the address)
            hop = (set(service["networks"]) & set(services[host]["networks"])) - {"data", "cache"}
            assert hop, f"{name} shares no network with its peer {host}"
    assert peers == {"monolithic": 0, "layered": 3, "microservices": 9}[mode]


def test_the_public_ports_in_every_mode(mode: str) -> None:
    services = load(mode)["services"]
    all_ports: set[int] = set()
    for name, expected in EDGE[mode].items():
        ports = published(services[name])
        assert ports == expected, name
        all_ports |= ports
    assert all_ports == {8000, 50051}
    others = {n for n, s in services.items() if s.get("ports")} - EDGE[mode].keys()
    for name in others:  # the layered admin only: on this machine alone
        assert all(side.startswith("127.0.0.1:") for side in host_sides(services[name]).values())


def test_the_host_side_of_every_port_is_a_variable(mode: str) -> None:
    # Another address or port without editing the file (the container tests
    # publish on free 127.0.0.1 ports: tests/containers/compose.py).
    services = load(mode)["services"]
    variables: dict[str, str] = {}
    for service in services.values():
        variables |= host_sides(service)
    expected = {"ARCANA_PUBLISH_REST": "8000", "ARCANA_PUBLISH_GRPC": "50051"}
    if mode == "layered":
        expected["ARCANA_PUBLISH_ADMIN"] = "127.0.0.1:8001"
    assert variables == expected


def test_images_and_hardening(mode: str) -> None:
    document = load(mode)
    services = document["services"]
    assert services["mysql"]["image"] == "mysql:8.4"
    assert services["redis"]["image"] == "redis:7"
    for name, service in apps(document).items():
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name  # noqa: S108  (a tmpfs, private to it)
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        variables = env(service)
        if mode == "monolithic":
            assert "ARCANA_MODE" not in variables, name
        else:
            assert variables["ARCANA_MODE"] == mode, name


def test_layered_tiers() -> None:
    services = load("layered")["services"]
    tiers = {name: env(s)["ARCANA_TIER"] for name, s in apps(load("layered")).items()}
    assert tiers == {
        "migrate": "repository",
        "repository": "repository",
        "admin": "repository",
        "worker": "repository",
        "service": "service",
        "rest": "controller",
        "grpc": "controller",
    }
    assert env(services["repository"])["TIER_PORT"] == "50053"
    assert env(services["service"])["TIER_PORT"] == "50052"
    assert env(services["rest"])["ARCANA_SERVICE_ADDR"] == "service:50052"
    assert env(services["service"])["ARCANA_REPOSITORY_ADDR"] == "repository:50053"


def test_microservices_gateway() -> None:
    document = load("microservices")
    gateway = document["services"]["gateway"]
    assert gateway["image"] == "nginx:1.27"
    assert gateway["volumes"] == [
        "./nginx/arcana.conf.template:/etc/nginx/templates/arcana.conf.template:ro"
    ]
    assert set(depends(gateway)) == {"users-rest", "users-grpc", "auth-rest", "auth-grpc"}
    for name, service in apps(document).items():
        if role(service) in ("rest", "grpc"):
            assert env(service)["NUM_PROXIES"] == "1", name
            assert env(service)["GRPC_NUM_PROXIES"] == "1", name
            assert "gateway" in service["networks"], name
            assert not service.get("ports"), f"{name} is reached through the gateway only"


def test_the_generator_makes_every_secret_file(tmp_path: Path) -> None:
    from scripts.compose_secrets import generate

    generate(tmp_path)
    for mode in MODES:
        for name, secret in load(mode)["secrets"].items():
            path = tmp_path / secret["file"].removeprefix("./secrets/")
            assert path.is_file(), f"{mode}: {name} ({secret['file']})"


# --- each container's environment, as production settings read it ----------------------


def container_env(document: dict[str, Any], name: str, secrets_dir: Path) -> dict[str, str]:
    """A service's environment with its secrets where compose mounts them, and
    NAME_FILE read into NAME as docker/entrypoint.sh does (tests/test_image.py)."""
    files = {
        key: secrets_dir / s["file"].removeprefix("./secrets/")
        for key, s in document["secrets"].items()
    }
    resolved = {}
    for key, value in env(document["services"][name]).items():
        value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)  # the defaults compose fills in
        if value.startswith("/run/secrets/"):
            value = str(files[value.removeprefix("/run/secrets/")])
        if key.endswith("_FILE"):
            resolved[key.removesuffix("_FILE")] = Path(value).read_text().strip()
        else:
            resolved[key] = value
    return resolved


def test_every_container_environment_loads_in_production(tmp_path: Path) -> None:
    from scripts.compose_secrets import generate

    generate(tmp_path)
    environments: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for mode in MODES:
        document = load(mode)
        for name in apps(document):
            key = tuple(sorted(container_env(document, name, tmp_path).items()))
            environments.setdefault(key, []).append(f"{mode}/{name}")
    # monolithic; layered controller, service, repository, admin; per microservice
    # its REST + gRPC, its tier (TLS files, port) and its migrate step (no TLS);
    # the mail worker of each mode (its servers' environment and the mail settings).
    assert len(environments) == 14, sorted(environments.values())

    def check(environment: tuple[tuple[str, str], ...]) -> subprocess.CompletedProcess[str]:
        return run_manage("check", settings="arcana.settings.production", env=dict(environment))

    with ThreadPoolExecutor(max_workers=len(environments)) as pool:
        results = dict(zip(environments, pool.map(check, environments), strict=True))
    for environment, result in results.items():
        assert result.returncode == 0, (environments[environment], result.stderr[-2000:])


# What the host's scheduler runs beside the mail worker (README "Account mail"),
# as the file's comments say: docker-compose run SERVICE ROLE.
SCHEDULED_ROLES = ("prune", "recover")


def test_the_queue_jobs_run_as_the_mail_worker(mode: str) -> None:
    """The comments' ``run --rm --no-deps -T SERVICE ROLE`` lines name the
    service that runs the worker (its settings, its database) for both the
    nightly prune and the 5-minute recovery of a dead worker's tasks."""
    document = load(mode)
    (worker,) = [name for name, s in apps(document).items() if role(s) == "worker"]
    lines = re.findall(r"run --rm --no-deps -T (\S+) (\S+)", text(mode))
    assert sorted(set(lines)) == sorted((worker, job) for job in SCHEDULED_ROLES)
    assert worker in DATA_HOLDERS[mode]
