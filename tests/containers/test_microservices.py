"""Microservices mode as containers: docker/compose.microservices.yml under
podman (tests/containers/compose.py): the nginx gateway (the nginx:1.27
stand-in rendering docker/nginx/arcana.conf.template) in front of the users
and the auth service, each with its own database on one MySQL, checked
through the gateway's published ports and by ``podman inspect``.
"""

import os
from collections.abc import Iterator

import pytest

from tests.containers.compose import Project
from tests.containers.modes import (
    ComposeChecks,
    bring_up,
    create_admin,
    database_credentials,
    port,
)
from tests.containers.podman import SERVING, grpc_health, rest_health_on
from tests.live.flow import Admin

IMAGE = os.environ.get("ARCANA_CONTAINER_IMAGE", "arcana:latest")
PUBLISHED = ["ARCANA_PUBLISH_REST", "ARCANA_PUBLISH_GRPC"]


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest) -> Iterator[Project]:
    yield from bring_up("microservices", PUBLISHED, request, IMAGE)


@pytest.fixture(scope="module")
def admin(project: Project) -> Admin:
    return create_admin(project, "users-rest")  # the users service holds the users


class TestMicroservices(ComposeChecks):
    def test_the_gateway_answers_on_both_published_ports(self, project: Project) -> None:
        assert rest_health_on(port(project, "ARCANA_PUBLISH_REST")) == 200
        # gRPC health through the gateway: the users service's (the template's route).
        assert grpc_health(port(project, "ARCANA_PUBLISH_GRPC")) == SERVING

    def test_each_service_holds_its_own_database_only(self, project: Project) -> None:
        for service in project.apps():
            own = project.services[service]["environment"]["ARCANA_SERVICE"]
            other = {"users": "auth", "auth": "users"}[own]
            held = database_credentials(project.inspect(service))
            assert f"/run/secrets/{own}_database_url" in held, service
            assert not [item for item in held if other in item], (service, held)
