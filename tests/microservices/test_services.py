"""Microservices mode, service by service: what each holds, serves and reaches.

Each service runs every app's code but holds only its own app's data: the
users service users (and the admin's tables), the auth service authn's
refresh tokens. The other app is reached through its ``service`` boundary
over internal gRPC; its repository and its models are refused."""

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

import authn
import users
from arcana.core import delegation
from arcana.core.internal import RemoteBoundary
from arcana.db.ownership import ForeignDataUse, ServiceDataRouter, service_of
from arcana.grpc.server import served_services
from arcana.modes import Deployment, Mode, Service
from authn.models import RefreshToken
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from tests.commands import command_error, refusal, run_service
from tests.grpc.conftest import live_db, start_server
from tests.jwtkeys import key_pair, simple_jwt
from tests.routing import refused as _refused
from users.models import User

SUPERUSER = {
    "DJANGO_SUPERUSER_EMAIL": "root@example.com",
    "DJANGO_SUPERUSER_NAME": "Root",
    "DJANGO_SUPERUSER_PASSWORD": "a long and unusual passphrase 42",
}


def microservice(
    service: str, *, users: tuple[str, ...] = (), auth: tuple[str, ...] = ()
) -> Deployment:
    return Deployment(
        mode=Mode.MICROSERVICES,
        service=Service(service),
        internal_insecure=True,
        users_targets=users,
        auth_targets=auth,
    )


@pytest.fixture
def deployed_as(settings: Any) -> Callable[[str], None]:
    """Make this process the ``service`` microservice (its deployment setting)."""

    def deploy(service: str) -> None:
        settings.ARCANA_DEPLOYMENT = microservice(
            service, users=("127.0.0.1:1",), auth=("127.0.0.1:1",)
        )

    return deploy


# --- each service's database ---------------------------------------------------------------


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_each_service_migrates_its_own_apps_tables_only(tmp_path: Path) -> None:
    files = {service: tmp_path / f"{service}.sqlite3" for service in ("users", "auth")}
    env = {
        "USERS_DATABASE_URL": f"sqlite:///{files['users']}",
        "AUTH_DATABASE_URL": f"sqlite:///{files['auth']}",
    }
    for service in files:
        result = run_service(service, "migrate", "--noinput", "-v", "0", env=env)
        assert result.returncode == 0, result.stderr
    users_tables, auth_tables = _tables(files["users"]), _tables(files["auth"])
    assert {"users_user", "users_role", "django_session", "auth_permission"} <= users_tables
    assert not {table for table in users_tables if table.startswith("authn_")}
    assert {table for table in auth_tables if table != "sqlite_sequence"} == {
        "authn_refreshtoken",
        "django_migrations",
    }

    refused = run_service("auth", "createsuperuser", "--noinput", env={**env, **SUPERUSER})
    assert command_error(refused) == (
        "createsuperuser runs where the users' data lives: the users service, "
        "not the auth service (make superuser MODE=microservices)."
    )
    made = run_service("users", "createsuperuser", "--noinput", env={**env, **SUPERUSER})
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(files["users"]) as db:
        assert db.execute("SELECT email, is_superuser FROM users_user").fetchall() == [
            ("root@example.com", 1)
        ]


@pytest.mark.django_db
def test_the_orm_refuses_the_other_services_models(
    deployed_as: Callable[[str], None], settings: Any
) -> None:
    settings.DATABASE_ROUTERS = ["arcana.db.ownership.ServiceDataRouter"]
    deployed_as("auth")
    assert RefreshToken.objects.count() == 0
    with pytest.raises(ForeignDataUse) as caught:
        User.objects.filter(email="x@example.com").exists()
    assert str(caught.value) == (
        "users.User is the users service's data, which the auth service reaches only "
        "through users.service"
    )
    deployed_as("users")
    assert User.objects.count() == 0
    with pytest.raises(ForeignDataUse, match=r"^authn\.RefreshToken is the auth service's data"):
        RefreshToken.objects.create(
            jti="j",
            user_id="u",
            family="j",
            token="t",
            created_at=timezone.now(),
            expires_at=timezone.now(),
        )


@pytest.mark.parametrize(
    ("service", "app", "allowed"),
    [
        ("users", "users", None),
        ("users", "admin", None),
        ("users", "contenttypes", None),
        ("users", "authn", False),
        ("auth", "authn", None),
        ("auth", "users", False),
        ("auth", "auth", False),
        ("auth", "sessions", False),
    ],
)
def test_migrations_follow_the_owner(
    deployed_as: Callable[[str], None], service: str, app: str, allowed: bool | None
) -> None:
    deployed_as(service)
    assert ServiceDataRouter().allow_migrate("default", app) is allowed
    assert (service_of(app) == service) is (allowed is None)


def test_the_router_asks_where_the_code_runs_and_refuses_nothing_outside_a_service() -> None:
    """``here``: where both services run in one process (tests/layered.py),
    the running call's service; None outside any service's code."""
    where: list[str | None] = ["auth"]
    router = ServiceDataRouter(here=lambda: where[0])
    with pytest.raises(ForeignDataUse, match=r"^users\.User .* the auth service reaches"):
        router.db_for_read(User)
    assert router.db_for_write(RefreshToken) is None
    assert router.allow_migrate("default", "users") is False
    where[0] = None
    assert router.db_for_read(User) is router.db_for_write(RefreshToken) is None
    assert router.allow_migrate("default", "users") is router.allow_migrate("default", "authn")
    assert router.allow_migrate("default", "authn") is None


# --- what each service reaches -----------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "home", "owned", "how"),
    [
        ("users", "service", "users", delegation.LOCAL),
        ("users", "repository", "users", delegation.LOCAL),
        ("authn", "service", "users", delegation.REMOTE),
        ("authn", "repository", "users", delegation.OUT_OF_REACH),
        ("users", "service", "authn", delegation.REMOTE),
        ("users", "repository", "authn", delegation.OUT_OF_REACH),
    ],
)
def test_service_reach(app: str, home: str, owned: str, how: str) -> None:
    assert delegation.service_reach(app=app, home=home, owned=owned) == how


def test_the_other_apps_service_is_a_client_of_its_owner_and_its_repository_is_refused(
    settings: Any,
) -> None:
    settings.ARCANA_DEPLOYMENT = microservice("users", auth=("127.0.0.1:1", "127.0.0.1:2"))
    boundaries = authn._boundaries
    remote = boundaries._remote_implementation("service")
    assert isinstance(remote, RemoteBoundary)
    try:
        assert remote.boundary == "authn.service"
        assert len(remote._channels) == 2  # both addresses of ARCANA_AUTH_ADDR
    finally:
        remote.close()
    with pytest.raises(delegation.NotReachable) as caught:
        boundaries._remote_implementation("repo")
    assert str(caught.value) == (
        "authn.repo is another service's data: the users service reaches authn only "
        "through authn.service"
    )
    assert users._boundaries._is_local("service")
    assert users._boundaries._is_local("repo")
    assert not boundaries._is_local("service")


def test_each_internal_server_serves_its_own_apps_service_only() -> None:
    assert set(delegation.served_boundaries("service", app="users")) == {"users.service"}
    assert set(delegation.served_boundaries("service", app="authn")) == {"authn.service"}
    assert set(delegation.served_boundaries("service")) == {"users.service", "authn.service"}


# --- what each service serves ------------------------------------------------------------


@pytest.fixture
def serve_as(routed_as: Callable[[Deployment, str], Client]) -> Callable[[str], Client]:
    """A client of this process routed as microservice ``service`` routes it."""

    def serve(service: str) -> Client:
        deployment = microservice(service, users=("127.0.0.1:1",), auth=("127.0.0.1:1",))
        return routed_as(deployment, f"the_{service}_service")

    return serve


@pytest.mark.django_db
def test_the_users_service_serves_the_users_api_the_whole_apis_docs_and_the_admin(
    serve_as: Callable[[str], Client], settings: Any
) -> None:
    settings.SIMPLE_JWT = simple_jwt(key_pair(), verify_only=True)  # it only verifies
    client = serve_as("users")
    assert client.get("/api/v1/users").status_code == 401
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = set(schema.json()["paths"])
    assert {"/api/v1/users", "/api/v1/auth/login", "/api/v1/auth/register"} <= paths
    assert client.get("/admin/").status_code == 302
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the auth service is down: degraded, still ready
    assert ready.json()["checks"] == {"database": "ok", "cache": "ok", "auth service": "degraded"}
    assert _refused(client.post("/api/v1/auth/login", {}, content_type="application/json"))
    assert _refused(client.get("/.well-known/jwks.json"))


@pytest.mark.django_db
def test_the_auth_service_serves_the_auth_api_and_the_jwks_only(
    serve_as: Callable[[str], Client], settings: Any
) -> None:
    settings.SIMPLE_JWT = simple_jwt(key_pair())
    client = serve_as("auth")
    assert client.post("/api/v1/auth/login", {}, content_type="application/json").status_code == 400
    assert client.get("/.well-known/jwks.json").json()["keys"][0]["kty"] == "OKP"
    assert client.get("/readyz").json()["checks"]["users service"] == "degraded"
    for path in ("/api/v1/users", "/api/schema", "/api/docs", "/admin/"):
        assert _refused(client.get(path)), path


@pytest.mark.parametrize(
    ("service", "served", "refused"),
    [
        ("users", "arcana.v1.UserService", "arcana.v1.AuthService"),
        ("auth", "arcana.v1.AuthService", "arcana.v1.UserService"),
    ],
)
@live_db
def test_each_service_serves_its_own_grpc_service(
    deployed_as: Callable[[str], None], service: str, served: str, refused: str
) -> None:
    deployed_as(service)
    assert served_services() == (served,)
    server = start_server(reflection=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            calls = {
                "arcana.v1.UserService": lambda: users_pb2_grpc.UserServiceStub(channel).ListUsers(
                    users_pb2.ListUsersRequest(), timeout=5
                ),
                "arcana.v1.AuthService": lambda: auth_pb2_grpc.AuthServiceStub(channel).Login(
                    auth_pb2.LoginRequest(), timeout=5
                ),
            }
            with pytest.raises(grpc.RpcError) as here:
                calls[served]()
            assert here.value.code() in {
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.INVALID_ARGUMENT,
            }
            with pytest.raises(grpc.RpcError) as elsewhere:
                calls[refused]()
            assert elsewhere.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(0).wait(5)
    assert django_settings.ARCANA_DEPLOYMENT.service is Service(service)


def test_a_service_without_internal_tls_runs_commands_but_serves_nothing(tmp_path: Path) -> None:
    """migrate needs no certificate for a peer it never calls; the servers
    (WSGI and both gRPC servers) refuse to start without one."""
    env = {
        "USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'users.sqlite3'}",
        "ARCANA_INTERNAL_INSECURE": "false",
    }
    migrated = run_service("users", "migrate", "--noinput", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    message = (
        "internal calls need mutual TLS (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA) "
        "or ARCANA_INTERNAL_INSECURE=true"
    )
    for command in (["grpcrunserver", "127.0.0.1:0"], ["tierserver", "127.0.0.1:0"]):
        assert refusal(run_service("users", *command, env=env)) == message, command
    wsgi = run_service("users", "shell", "-c", "import arcana.wsgi", env=env)
    assert refusal(wsgi) == message


@pytest.mark.mysql
def test_the_auth_service_migrates_on_mysql_without_the_mail_queues_tables() -> None:
    # On MySQL a third-party migration that introspects a table the router kept
    # out of this database fails (django_tasks_db 0019); SQLite's introspection
    # of a missing table does not, so the SQLite test above cannot see it.
    import os

    from tests.support.stack import mysql_connect, mysql_database_create, mysql_database_drop

    url = mysql_database_create(os.environ["DATABASE_URL"], prefix="arcana_authmig")
    try:
        result = run_service(
            "auth", "migrate", "--noinput", "-v", "0", env={"AUTH_DATABASE_URL": url}
        )
        assert result.returncode == 0, result.stderr
        conn = mysql_connect(url)
        try:
            cursor = conn.cursor()
            cursor.execute("SHOW TABLES")
            tables = {row[0] for row in cursor.fetchall()}
        finally:
            conn.close()
        assert tables == {"authn_refreshtoken", "django_migrations"}
    finally:
        mysql_database_drop(url)
