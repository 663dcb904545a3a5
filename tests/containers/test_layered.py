"""Layered mode as containers: docker/compose.layered.yml under podman
(tests/containers/compose.py), checked through its published ports --
controller REST and gRPC, the repository tier's admin -- and by
``podman inspect``; then SIGTERM under load to the controller's REST and
gRPC containers, stopped as compose stops them (``podman stop`` with the
file's stop_grace_period).
"""

import os
import time
from collections.abc import Iterator

import grpc
import pytest

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc
from tests.containers.compose import Project
from tests.containers.modes import ComposeChecks, bring_up, create_admin, port
from tests.containers.podman import (
    CONNECT_TIMEOUT,
    SERVING,
    grpc_health,
    podman,
    resets_too,
    rest_health_on,
    sigterm_under_load,
    stop_container,
)
from tests.live.flow import Admin, RestApi
from tests.support.clients import bearer

IMAGE = os.environ.get("ARCANA_CONTAINER_IMAGE", "arcana:latest")
PUBLISHED = ["ARCANA_PUBLISH_REST", "ARCANA_PUBLISH_GRPC", "ARCANA_PUBLISH_ADMIN"]
# Calls go on this long after a controller container is gone: past podman's
# clean-up of its forwarding, when the published port refuses at once.
LINGER = 3.0
# Whether each server container can open a connection to MySQL at all.
REACHES_MYSQL = {"repository": True, "admin": True, "service": False, "rest": False, "grpc": False}


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest) -> Iterator[Project]:
    yield from bring_up("layered", PUBLISHED, request, IMAGE)


@pytest.fixture(scope="module")
def admin(project: Project) -> Admin:
    return create_admin(project, "admin")  # the repository tier's admin container


class TestLayered(ComposeChecks):
    def test_the_admin_is_published_on_its_own_port(self, project: Project) -> None:
        assert rest_health_on(port(project, "ARCANA_PUBLISH_ADMIN")) == 200

    def test_only_the_repository_tier_reaches_mysql(self, project: Project) -> None:
        # Each hop its own network: the controller and the service tier cannot
        # even resolve the database's name.
        probe = "import socket; socket.create_connection(('mysql', 3306), 3)"
        for service, reaches in REACHES_MYSQL.items():
            done = podman("exec", project.container(service), "python", "-c", probe, check=False)
            assert (done.returncode == 0) is reaches, (service, done.stderr[-500:])


# --- SIGTERM under load to the controller (last: it stops the controller) ---------------


@pytest.fixture
def admin_session(project: Project, admin: Admin) -> tuple[str, str]:
    pair = RestApi(port(project, "ARCANA_PUBLISH_REST")).login(
        email=admin.email, password=admin.password
    )
    return pair.ok()["access"], pair.ok()["user"]["id"]


def test_sigterm_to_the_controller_rest_container_under_load(
    project: Project, admin: Admin, admin_session: tuple[str, str]
) -> None:
    # tests/live/test_shutdown.py's check through the published port: every
    # request answered in full (login goes controller -> service -> repository)
    # or refused, exit 0 well within the grace period.
    from tests.live.test_shutdown import rest_caller

    token, admin_id = admin_session
    rest = port(project, "ARCANA_PUBLISH_REST")
    credentials = {"email": admin.email, "password": admin.password}
    fast = {"connect_timeout": CONNECT_TIMEOUT}
    login = rest_caller(rest, "POST", "/api/v1/auth/login", credentials, "", admin_id, **fast)
    me = rest_caller(rest, "GET", "/api/v1/auth/me", None, token, admin_id, **fast)
    stop = stop_container(project.grace("rest"))
    try:
        sigterm_under_load(
            project.container("rest"),
            {"me": resets_too(me), "login": resets_too(login)},
            terminate=stop,
            linger=LINGER,
        )
    finally:
        started_again(project, "rest")


def test_sigterm_to_the_controller_grpc_container_under_load(
    project: Project, admin: Admin, admin_session: tuple[str, str]
) -> None:
    from tests.live.test_shutdown import OK, grpc_caller

    token, admin_id = admin_session
    address = f"127.0.0.1:{port(project, 'ARCANA_PUBLISH_GRPC')}"
    assert grpc_health(port(project, "ARCANA_PUBLISH_GRPC")) == SERVING
    metadata = bearer(token)
    login = auth_pb2.LoginRequest(email=admin.email, password=admin.password)

    def me(stub: auth_pb2_grpc.AuthServiceStub) -> str:
        reply = stub.Me(auth_pb2.MeRequest(), metadata=metadata, timeout=15)
        return OK if reply.id == admin_id else "wrong answer"

    def log_in(stub: auth_pb2_grpc.AuthServiceStub) -> str:
        pair = stub.Login(login, timeout=15)
        return OK if pair.user.id == admin_id and pair.access else "wrong answer"

    channels: list[grpc.Channel] = []
    calls = {
        "me": grpc_caller(address, channels, me),
        "login": grpc_caller(address, channels, log_in),
    }
    try:
        # grpc/grpc#41785: see tests/live/test_shutdown.py.
        sigterm_under_load(
            project.container("grpc"),
            calls,
            unmatched="StatusCode.CANCELLED: CANCELLED",
            terminate=stop_container(project.grace("grpc")),
            linger=LINGER,
        )
    finally:
        for channel in channels:
            channel.close()
        started_again(project, "grpc")


def started_again(project: Project, service: str) -> None:
    """The stopped container started again (``docker-compose start``), healthy
    by its own check and through its published port."""
    podman("start", project.container(service))
    project.wait(service, "service_healthy", time.monotonic() + 60)
    if service == "rest":
        assert rest_health_on(port(project, "ARCANA_PUBLISH_REST")) == 200
    else:
        assert grpc_health(port(project, "ARCANA_PUBLISH_GRPC")) == SERVING
