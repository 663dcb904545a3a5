"""The image's pieces that run without a container engine: the entry point
(docker/entrypoint.sh), the role-aware health check (docker/healthcheck.py),
the compose secrets generator (scripts/compose_secrets.py), the MySQL init
script of the microservices compose file, and the Dockerfile's wiring."""

import http.server
import importlib.util
import os
import re
import stat
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from arcana.core.jwtkeys import load_jwt_keys
from scripts.compose_secrets import generate
from tests.entrypoint import ENTRYPOINT, entrypoint, make_fake_bin
from tests.support.stack import image_env, server_env

ROOT = Path(__file__).resolve().parent.parent
INIT_SQL = ROOT / "docker" / "mysql" / "init-microservices.sh"


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "arcana_healthcheck", ROOT / "docker" / "healthcheck.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hc = _load_healthcheck()


# --- docker/entrypoint.sh ---------------------------------------------------------------


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A ``python`` that prints what it was started with."""
    return make_fake_bin(tmp_path / "bin")


@pytest.mark.parametrize(
    ("args", "env", "program", "argv"),
    [
        (["rest"], {}, "python", ["-m", "arcana.wsgi_server"]),
        (
            ["rest", "bench.floor_wsgi:application"],
            {},
            "python",
            ["-m", "arcana.wsgi_server", "bench.floor_wsgi:application"],
        ),
        (
            ["grpc"],
            {},
            "python",
            ["manage.py", "grpcrunserver", "0.0.0.0:50051", "--workers", "2"],
        ),
        (
            ["grpc"],
            {"GRPC_WORKERS": "3"},
            "python",
            ["manage.py", "grpcrunserver", "0.0.0.0:50051", "--workers", "3"],
        ),
        (
            ["tier"],
            {"TIER_PORT": "50053"},
            "python",
            ["manage.py", "tierserver", "0.0.0.0:50053"],
        ),
        (["migrate"], {}, "python", ["manage.py", "migrate", "--noinput"]),
        (["worker"], {}, "python", ["manage.py", "db_worker"]),
        (["prune"], {}, "python", ["manage.py", "prune_db_task_results", "--min-age-days", "14"]),
        (
            ["prune", "--dry-run"],
            {"TASK_RESULTS_KEEP_DAYS": "0"},
            "python",
            ["manage.py", "prune_db_task_results", "--min-age-days", "0", "--dry-run"],
        ),
        (["recover"], {}, "python", ["manage.py", "recover_stuck_tasks"]),
        (
            ["recover", "--dry-run"],
            {"TASK_STUCK_AFTER_SECONDS": "600", "TASK_STUCK_MAX_RUNS": "1"},
            "python",
            ["manage.py", "recover_stuck_tasks", "--dry-run"],
        ),
        (
            ["manage", "createsuperuser", "--noinput"],
            {},
            "python",
            ["manage.py", "createsuperuser", "--noinput"],
        ),
    ],
)
def test_each_role_execs_its_server(
    fake_bin: Path, args: list[str], env: dict[str, str], program: str, argv: list[str]
) -> None:
    status, started, stderr = entrypoint(fake_bin, *args, **env)
    assert status == 0, stderr
    assert started["program"] == program
    assert started["argv"] == argv
    assert started["cwd"] == str(ROOT)  # the code's directory, wherever it was started


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["python", "manage.py"],
            {},
            "unknown role 'python' (rest, grpc, tier, migrate, worker, prune, recover or manage)",
        ),
        ([], {}, "usage: entrypoint.sh ROLE"),
        (["tier"], {}, "the tier role needs TIER_PORT"),
        *(
            (
                ["prune"],
                {"TASK_RESULTS_KEEP_DAYS": days},
                f"TASK_RESULTS_KEEP_DAYS must be a whole number of days, 0 or more (got '{days}')",
            )
            for days in ("-1", "14d", "1.5", " 7")
        ),
        *(
            (
                ["recover"],
                {name: value},
                f"{name} must be a whole number, 1 or more (got '{value}')",
            )
            for name in ("TASK_STUCK_AFTER_SECONDS", "TASK_STUCK_MAX_RUNS")
            for value in ("", "0", "-1", "15m", "1.5", " 7", "09")
        ),
    ],
)
def test_bad_roles_are_refused_clearly(
    fake_bin: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    status, started, stderr = entrypoint(fake_bin, *args, **env)
    assert status == 2
    assert not started
    assert message in stderr


def test_secret_files_become_variables(fake_bin: Path, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("the-key-value\n")
    (tmp_path / "url").write_text("mysql://u:p@mysql:3306/arcana")
    status, started, stderr = entrypoint(
        fake_bin,
        "migrate",
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
        DATABASE_URL_FILE=str(tmp_path / "url"),
    )
    assert status == 0, stderr
    assert started["env"] == {
        "DJANGO_SECRET_KEY": "the-key-value",
        "DATABASE_URL": "mysql://u:p@mysql:3306/arcana",
    }


@pytest.mark.parametrize(
    ("content", "also", "message"),
    [
        (None, {}, "DATABASE_URL_FILE=X is not a readable file"),
        ("", {}, "DATABASE_URL_FILE=X is empty"),
        ("sqlite://", {"DATABASE_URL": "sqlite://"}, "set DATABASE_URL or DATABASE_URL_FILE"),
    ],
)
def test_bad_secret_files_are_refused(
    fake_bin: Path, tmp_path: Path, content: str | None, also: dict[str, str], message: str
) -> None:
    path = tmp_path / "url"
    if content is not None:
        path.write_text(content)
    status, started, stderr = entrypoint(fake_bin, "rest", DATABASE_URL_FILE=str(path), **also)
    assert status == 2
    assert not started
    assert message.replace("X", str(path)) in stderr


# --- docker/healthcheck.py: which role -----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/opt/venv/bin/python3.11", "-m", "arcana.wsgi_server"], "rest"),
        (["granian wsgi 0.0.0.0:8000 arcana.wsgi:application"], None),  # a worker's title
        (["python", "manage.py", "grpcrunserver", "0.0.0.0:50051"], "grpc"),
        (["python", "manage.py", "tierserver", "0.0.0.0:50052"], "tier"),
        (["python", "manage.py", "migrate", "--noinput"], "migrate"),
        (["python", "manage.py", "db_worker"], "worker"),
        (["/bin/sh", "/app/docker/entrypoint.sh", "grpc"], "grpc"),
        (["/bin/sh", "/app/docker/entrypoint.sh", "shell"], None),
        (["/sbin/docker-init", "--", "/app/docker/entrypoint.sh"], None),
        (["python", "manage.py", "shell"], None),
        (["nginx", "-g", "daemon off;"], None),
    ],
)
def test_role_of_a_command_line(argv: list[str], role: str | None) -> None:
    assert hc.role_of(argv) == role


def test_the_role_is_read_from_the_servers_command_line(tmp_path: Path) -> None:
    def process(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    (tmp_path / "self").mkdir()
    with pytest.raises(hc.Unhealthy, match="no rest, grpc, tier, migrate or worker process"):
        hc.detect_role(tmp_path)
    process(1, "/sbin/docker-init", "--", "/app/docker/entrypoint.sh", "tier")  # an init
    process(12, "python", "manage.py", "tierserver", "0.0.0.0:50052")
    process(30, "python", "manage.py", "grpcrunserver", "0.0.0.0:50051")
    assert hc.detect_role(tmp_path) == "tier"


@pytest.mark.parametrize(
    ("allowed", "host"),
    [("", "localhost"), ("api.example.com,localhost", "api.example.com"), ("*", "localhost")],
)
def test_the_host_header_is_one_django_allows(allowed: str, host: str) -> None:
    assert hc.host_header({"DJANGO_ALLOWED_HOSTS": allowed}) == host
    assert hc.host_header({"DJANGO_ALLOWED_HOSTS": ".example.org"}) == "example.org"


def test_serving_status_is_decoded() -> None:
    assert hc.serving_status(health_pb2.HealthCheckResponse(status=1).SerializeToString()) == 1
    assert hc.serving_status(health_pb2.HealthCheckResponse(status=2).SerializeToString()) == 2
    assert hc.serving_status(b"") == 0
    with pytest.raises(hc.Unhealthy):
        hc.serving_status(b"\x08")


# --- docker/healthcheck.py: against real servers ---------------------------------------------


@pytest.fixture
def http_server() -> Iterator[tuple[int, dict[str, Any]]]:
    """/healthz on 127.0.0.1:<ephemeral>; state["status"] is what it answers."""
    state: dict[str, Any] = {"status": 200, "hosts": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hosts"].append(self.headers["Host"])
            self.send_response(state["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_rest_check(http_server: tuple[int, dict[str, Any]], monkeypatch: Any) -> None:
    port, state = http_server
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "api.example.com")
    assert hc.main(["rest", "--port", str(port)]) == 0
    assert state["hosts"] == ["api.example.com"]
    monkeypatch.setenv("REST_BIND", f"0.0.0.0:{port}")
    assert hc.main(["rest"]) == 0  # the port the REST server binds
    state["status"] = 503
    assert hc.main(["rest"]) == 1


def test_rest_check_fails_when_nothing_listens(capsys: Any) -> None:
    closed = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    free = closed.server_address[1]
    closed.server_close()
    assert hc.main(["rest", "--port", str(free)]) == 1
    assert f"GET /healthz on port {free}" in capsys.readouterr().err


@pytest.fixture
def grpc_health_server() -> Iterator[Any]:
    """A gRPC server with only the health service; call .start(credentials)."""

    class Harness:
        servicer = health.HealthServicer()
        server: grpc.Server | None = None
        port = 0

        def start(self, credentials: grpc.ServerCredentials | None = None) -> int:
            self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
            if credentials is None:
                self.port = self.server.add_insecure_port("127.0.0.1:0")
            else:
                self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
            self.server.start()
            return self.port

        def set(self, status: int) -> None:
            self.servicer.set("", status)

    harness = Harness()
    yield harness
    if harness.server is not None:
        harness.server.stop(None)


def test_grpc_check(grpc_health_server: Any, capsys: Any) -> None:
    port = grpc_health_server.start()
    grpc_health_server.set(health_pb2.HealthCheckResponse.SERVING)
    assert hc.main(["grpc", "--port", str(port)]) == 0
    grpc_health_server.set(health_pb2.HealthCheckResponse.NOT_SERVING)
    assert hc.main(["grpc", "--port", str(port)]) == 1
    assert "not SERVING" in capsys.readouterr().err


@pytest.fixture(scope="module")
def dev_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("compose") / "secrets"
    generate(directory)
    return directory


def tier_env(directory: Path, group: str, port: int) -> dict[str, str]:
    return {
        "TIER_PORT": str(port),
        "ARCANA_INTERNAL_TLS_CERT": str(directory / f"tls_{group}.pem"),
        "ARCANA_INTERNAL_TLS_KEY": str(directory / f"tls_{group}.key"),
        "ARCANA_INTERNAL_TLS_CA": str(directory / "internal_ca.pem"),
    }


@pytest.mark.parametrize("group", ["service", "repository", "users", "auth"])
def test_tier_check_with_the_containers_own_certificate(
    grpc_health_server: Any, dev_secrets: Path, group: str
) -> None:
    # The tier server as the project builds it: mutual TLS, client certificates required.
    read = {name: (dev_secrets / name).read_bytes() for name in os.listdir(dev_secrets)}
    credentials = grpc.ssl_server_credentials(
        [(read[f"tls_{group}.key"], read[f"tls_{group}.pem"])],
        root_certificates=read["internal_ca.pem"],
        require_client_auth=True,
    )
    port = grpc_health_server.start(credentials)
    grpc_health_server.set(health_pb2.HealthCheckResponse.SERVING)
    hc.check("tier", None, tier_env(dev_secrets, group, port))
    # A plaintext check gets no answer from the mutual-TLS port.
    with pytest.raises(hc.Unhealthy, match="UNAVAILABLE"):
        hc.check("tier", port, {"ARCANA_INTERNAL_INSECURE": "true"})


def test_tier_check_refuses_a_certificate_of_another_ca(
    grpc_health_server: Any, dev_secrets: Path, tmp_path: Path
) -> None:
    read = {name: (dev_secrets / name).read_bytes() for name in os.listdir(dev_secrets)}
    port = grpc_health_server.start(
        grpc.ssl_server_credentials(
            [(read["tls_service.key"], read["tls_service.pem"])],
            root_certificates=read["internal_ca.pem"],
            require_client_auth=True,
        )
    )
    grpc_health_server.set(health_pb2.HealthCheckResponse.SERVING)
    generate(tmp_path / "other")
    with pytest.raises(hc.Unhealthy, match="health Check on port"):
        hc.check("tier", None, tier_env(tmp_path / "other", "service", port))


def test_tier_check_needs_tls_files_or_insecure() -> None:
    with pytest.raises(hc.Unhealthy, match="no internal TLS files"):
        hc.check("tier", 50052, {})
    with pytest.raises(hc.Unhealthy, match="TIER_PORT=''"):
        hc.check("tier", None, {"ARCANA_INTERNAL_INSECURE": "true"})
    with pytest.raises(hc.Unhealthy, match="ARCANA_INTERNAL_TLS_KEY='/nope'"):
        hc.check(
            "tier",
            50052,
            {
                "ARCANA_INTERNAL_TLS_CERT": str(ENTRYPOINT),
                "ARCANA_INTERNAL_TLS_KEY": "/nope",
                "ARCANA_INTERNAL_TLS_CA": str(ENTRYPOINT),
            },
        )


def test_migrate_and_the_worker_are_healthy_while_they_run() -> None:
    hc.check("migrate", None, {})
    hc.check("worker", None, {})


# --- scripts/compose_secrets.py ------------------------------------------------------------


def test_generated_secrets_are_private_and_usable(dev_secrets: Path) -> None:
    assert stat.S_IMODE(dev_secrets.stat().st_mode) == 0o700
    for path in dev_secrets.iterdir():
        # Readable by the containers' users (bind-mounted with the host's mode).
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    # (tests/test_compose.py loads production settings with them.)
    keys = {(dev_secrets / name).read_text() for name in ("django_secret_key", "jwt_signing_key")}
    assert len(keys) == 2
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{64}", key) for key in keys)
    for database, password in (
        ("arcana", "mysql_password"),
        ("users", "users_db_password"),
        ("auth", "auth_db_password"),
    ):
        url = dev_secrets / f"{'' if database == 'arcana' else database + '_'}database_url"
        secret = (dev_secrets / password).read_text()
        assert url.read_text() == f"mysql://{database}:{secret}@mysql:3306/{database}"
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", secret)
    pair = load_jwt_keys(
        private=str(dev_secrets / "jwt_private_key.pem"),
        public=str(dev_secrets / "jwt_public_key.pem"),
    )
    assert pair is not None
    assert pair.algorithm == "EdDSA"


def test_tier_certificates_name_their_compose_service(dev_secrets: Path) -> None:
    names = {
        "service": "service",
        "repository": "repository",
        "users": "users-tier",
        "auth": "auth-tier",
    }
    for group, host in names.items():
        cert = x509.load_pem_x509_certificate((dev_secrets / f"tls_{group}.pem").read_bytes())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {host, "localhost"} <= set(alt.get_values_for_type(x509.DNSName)), group


def test_the_generator_keeps_what_exists(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    first = generate(directory)
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    assert sorted(first) == sorted(before)
    assert generate(directory) == []
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    # A lost certificate: the whole TLS set is made again (one CA for all).
    (directory / "tls_auth.key").unlink()
    (directory / "users_database_url").unlink()
    again = generate(directory)
    assert {"internal_ca.pem", "tls_service.pem", "tls_auth.key"} <= set(again)
    assert {"users_db_password", "users_database_url"} <= set(again)
    assert (directory / "django_secret_key").read_bytes() == before["django_secret_key"]


# --- docker/mysql/init-microservices.sh --------------------------------------------------------


@pytest.fixture
def init_dir(tmp_path: Path) -> Path:
    (tmp_path / "users_db_password").write_text("usersPassword_0123456789")
    (tmp_path / "auth_db_password").write_text("authPassword-0123456789")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mysql").write_text(
        f'#!/bin/sh\necho "$MYSQL_PWD $*" >>"{tmp_path}/calls"\ncat >>"{tmp_path}/sql"\n'
    )
    (fake / "mysql").chmod(0o755)
    return tmp_path


def run_init(directory: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'{prelude}\nsource "$0"; echo "still here"', str(INIT_SQL)],
        env={
            "PATH": f"{directory / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "MYSQL_ROOT_PASSWORD": "rootpw",
            "ARCANA_INIT_SECRETS_DIR": str(directory),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_init_script_makes_a_database_and_user_per_service(init_dir: Path) -> None:
    result = run_init(init_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("still here")  # sourced: leaves the entry point running
    sql = (init_dir / "sql").read_text()
    for service, password in (
        ("users", "usersPassword_0123456789"),
        ("auth", "authPassword-0123456789"),
    ):
        assert f"CREATE DATABASE IF NOT EXISTS `{service}` CHARACTER SET utf8mb4" in sql
        assert f"CREATE USER IF NOT EXISTS '{service}'@'%' IDENTIFIED BY '{password}';" in sql
        assert f"GRANT ALL PRIVILEGES ON `{service}`.* TO '{service}'@'%';" in sql
    assert sql.count("GRANT") == 2
    assert (init_dir / "calls").read_text().splitlines() == [
        "rootpw --protocol=socket -uroot mysql"
    ] * 2


def test_init_script_uses_the_entry_points_client_when_sourced(init_dir: Path) -> None:
    prelude = f'docker_process_sql() {{ echo "$*" >>"{init_dir}/own"; cat >/dev/null; }}'
    result = run_init(init_dir, prelude)
    assert result.returncode == 0, result.stderr
    assert (init_dir / "own").read_text().splitlines() == ["--database=mysql"] * 2
    assert not (init_dir / "calls").exists()


@pytest.mark.parametrize("password", ["short", "quote'; DROP USER root; --", None])
def test_init_script_refuses_a_bad_password(init_dir: Path, password: str | None) -> None:
    if password is None:
        (init_dir / "auth_db_password").unlink()
    else:
        (init_dir / "auth_db_password").write_text(password)
    result = run_init(init_dir)
    assert result.returncode == 1
    assert "auth_db_password" in result.stderr
    assert "still here" not in result.stdout  # the MySQL image's initialisation fails
    assert "'auth'" not in (init_dir / "sql").read_text()


# --- docker/Dockerfile ----------------------------------------------------------------------


def test_dockerfile_wires_the_entry_point_and_the_health_check() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    assert 'ENTRYPOINT ["/app/docker/entrypoint.sh"]' in runtime
    assert runtime.rstrip().endswith('CMD ["rest"]')
    assert 'CMD ["python", "/app/docker/healthcheck.py"]' in runtime
    assert "/healthz" not in runtime.split("HEALTHCHECK", 1)[1]  # not HTTP for every role
    # Non-root from the last build step on.
    assert runtime.rindex("USER arcana") > runtime.rindex("RUN ")
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=False).returncode == 0


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuations joined,
    comments dropped."""
    joined, current = [], ""
    for line in dockerfile.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    return [
        (keyword.upper(), rest.strip()) for keyword, _, rest in (i.partition(" ") for i in joined)
    ]


def stages(dockerfile: str) -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            named[arguments.split()[-1]] = [(keyword, arguments)]
        else:
            named[list(named)[-1]].append((keyword, arguments))
    return named


DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_the_image_has_a_build_stage_and_a_runtime_stage_without_compilers() -> None:
    named = stages(DOCKERFILE)
    assert list(named) == ["build", "runtime"]
    # Both start from the same Python image (or its local stand-in, scripts/image.sh).
    assert named["build"][0][1] == named["runtime"][0][1].replace("runtime", "build")
    runtime = " ".join(arguments for _, arguments in named["runtime"])
    for compiler in ("build-essential", "gcc", "-dev", "pkg-config"):
        assert compiler not in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in [
        f"{k} {a}" for k, a in named["runtime"] if k == "COPY"
    ]
    # No installer in the runtime: the venv leaves the build without pip.
    build_runs = [a for k, a in named["build"] if k == "RUN"]
    assert "pip uninstall --yes --quiet pip setuptools" in build_runs[-1]


def test_the_build_ca_is_a_secret_of_the_pip_step_only() -> None:
    # Not a build argument (those are kept in the image's history), not a file
    # in any layer: a secret mount of the build stage's one pip step.
    assert not [a for k, a in instructions(DOCKERFILE) if k == "ARG"]
    assert "EXTRA_CA" not in DOCKERFILE
    named = stages(DOCKERFILE)
    mounting = [a for k, a in named["build"] if k == "RUN" and "--mount=type=secret" in a]
    assert len(mounting) == 1
    (run,) = mounting
    assert run.startswith("--mount=type=secret,id=ca,target=/run/secrets/ca,required=false ")
    assert "pip install" in run
    # The combined bundle pip is pointed at is gone before the step ends.
    assert run.index("rm -f /tmp/pip-ca.pem") > run.rindex("pip install")
    runtime = " ".join(f"{k} {a}" for k, a in named["runtime"])
    for trace in ("--mount", "/run/secrets", "PIP_CERT", "pip-ca", "update-ca-certificates"):
        assert trace not in runtime


def test_make_image_builds_offline_with_the_host_ca_as_the_secret() -> None:
    script = (ROOT / "scripts" / "image.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "image.sh")]).returncode == 0
    assert "export CONTAINERS_CONF=$PWD/docker/podman/containers.conf" in script
    assert 'secret=(--secret "id=ca,src=$BUILD_CA")' in script
    assert "BUILD_CA=${BUILD_CA-/etc/ssl/certs/ca-certificates.crt}" in script
    builds = [line for line in script.splitlines() if line.strip().startswith("podman build")]
    assert builds
    assert all("--pull=never" in line for line in builds)
    # The OCI format would drop the HEALTHCHECK.
    assert "podman build --pull=never --network host --format docker " in script
    # The stand-in is tagged as the name the Dockerfile starts from, in localhost/.
    base = stages(DOCKERFILE)["build"][0][1].split()[0]
    assert f"FROM_IMAGE={base}" in script
    assert "STANDIN=localhost/$FROM_IMAGE" in script
    standin = (ROOT / "docker" / "podman" / "python-standin.Containerfile").read_text()
    assert "FROM localhost/arcana-bookworm-minbase:latest" in standin
    for package in ("python3", "python3-venv", "python-is-python3", "ca-certificates"):
        assert f" {package} " in standin.replace("\\\n", " ")
    # podman's default ulimits exceed the sandbox's hard limits.
    conf = tomllib.loads((ROOT / "docker" / "podman" / "containers.conf").read_text())
    assert conf == {"containers": {"default_ulimits": []}}


def test_every_way_of_running_the_servers_uses_the_images_glibc_tunables() -> None:
    """docker/Dockerfile is the one place the value is chosen (Argon2's blocks
    in huge pages, users/hashers.py); `make run` and the test/bench servers
    must not drift from it."""
    value = image_env("GLIBC_TUNABLES")
    assert "glibc.malloc.hugetlb=1" in value.split(":")
    run_sh = (ROOT / "scripts" / "run.sh").read_text()
    assert f"GLIBC_TUNABLES=${{GLIBC_TUNABLES:-{value}}}" in run_sh
    assert server_env("", "")["GLIBC_TUNABLES"] == value
