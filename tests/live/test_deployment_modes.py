"""Every deployment mode passes the same end-to-end flow through its public
REST and gRPC ports, as production runs it: ``live_stack`` on MariaDB +
Redis, monolithic (REST server + grpcrunserver), layered (the controller tier
on the public ports, two service-tier replicas, the repository tier, mutual
TLS between them) and microservices (the nginx gateway on the public ports,
in front of a users service and an auth service, each with its own
database, calling each other's internal gRPC with mutual TLS).

The internal ports also have to refuse any client that does not present a
certificate of the deployment's CA.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arcana.core.internal import SERVICE_NAMES
from arcana.core.wire import Codec
from protos.arcana.internal.v1 import boundary_pb2, boundary_pb2_grpc
from tests.factories import DEFAULT_PASSWORD
from tests.live.conftest import UNTHROTTLED, live_database_url, live_redis_url, server_log_problems
from tests.live.flow import JOURNEY_DEADLINE, Admin, run_journeys
from tests.support.stack import LiveStack, live_stack, mysql_connect
from users.interfaces import UserRepositoryInterface, UserServiceInterface

pytestmark = pytest.mark.live

MODES = ["monolithic", "layered", "microservices"]
CALL_TIMEOUT = 10


@pytest.fixture(scope="module", params=MODES)
def deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    mode = str(request.param)
    with live_stack(
        live_database_url(),
        live_redis_url(),
        mode=mode,
        service_replicas=2,
        rest_workers=2,
        grpc_workers=2,
        env_overrides={**UNTHROTTLED, **JOURNEY_DEADLINE},
        password=DEFAULT_PASSWORD,
        log_dir=tmp_path_factory.mktemp(f"{mode}-logs"),
    ) as running:
        yield running
        problems = server_log_problems(running)
    assert not problems, "server logs:\n" + "\n".join(problems[:20])


def test_the_user_journey_through_both_public_ports(deployed: LiveStack) -> None:
    admin = Admin(email=deployed.admin_email, password=deployed.password)
    run_journeys(deployed.rest_port, deployed.grpc_address, admin, password=DEFAULT_PASSWORD)
    if deployed.mode == "layered":  # the edge reached the data through both replicas
        for server in deployed.tiers["service"]:
            server.check_alive()
    if deployed.mode == "microservices":  # each service kept its own data, and only its own
        tables = {service: _tables(url) for service, url in deployed.databases.items()}
        assert "users_user" in tables["users"]
        assert "authn_refreshtoken" in tables["auth"]
        assert not {table for table in tables["users"] if table.startswith("authn_")}
        assert tables["auth"] == {"authn_refreshtoken", "django_migrations"}
        with mysql_connect(deployed.databases["auth"]) as auth_db:
            cursor = auth_db.cursor()
            cursor.execute("SELECT COUNT(DISTINCT user_id) FROM authn_refreshtoken")
            assert cursor.fetchone()[0] >= 2  # the journeys' users and the admin logged in


def _tables(url: str) -> set[str]:
    with mysql_connect(url) as db:
        cursor = db.cursor()
        cursor.execute("SHOW TABLES")
        return {row[0] for row in cursor.fetchall()}


# --- the internal ports: mutual TLS --------------------------------------------------------


def _tls(stack: LiveStack) -> dict[str, bytes]:
    env = stack.tier_env("service" if stack.mode == "layered" else "users")
    return {
        name: Path(env[f"ARCANA_INTERNAL_TLS_{name.upper()}"]).read_bytes()
        for name in ("cert", "key", "ca")
    }


def _clients(stack: LiveStack) -> dict[str, grpc.ChannelCredentials | None]:
    """Every way to knock on an internal port; only "tier certificate" may enter."""
    tls = _tls(stack)
    stranger = trustme.CA(organization_name="Not the tiers' CA").issue_cert("127.0.0.1")
    return {
        "plaintext": None,
        "TLS, no client certificate": grpc.ssl_channel_credentials(root_certificates=tls["ca"]),
        "another CA's certificate": grpc.ssl_channel_credentials(
            root_certificates=tls["ca"],
            private_key=stranger.private_key_pem.bytes(),
            certificate_chain=stranger.cert_chain_pems[0].bytes(),
        ),
        "tier certificate": grpc.ssl_channel_credentials(
            root_certificates=tls["ca"], private_key=tls["key"], certificate_chain=tls["cert"]
        ),
    }


def _invoke(home: str, stack: LiveStack) -> tuple[Any, boundary_pb2.InvokeRequest]:
    """A read the tier serves, and the stub it goes through."""
    if home == "repository":
        codec, boundary, method = Codec(UserRepositoryInterface), "users.repo", "user_get"
        stub: Any = boundary_pb2_grpc.RepositoryStub
    else:
        codec, boundary, method = Codec(UserServiceInterface), "users.service", "user_record"
        stub = boundary_pb2_grpc.ServiceStub
    arguments = codec.encode_arguments(method, {"user_id": stack.admin_id})
    return stub, boundary_pb2.InvokeRequest(boundary=boundary, method=method, arguments=arguments)


def _attempt(
    address: str, credentials: grpc.ChannelCredentials | None, home: str, stack: LiveStack
) -> tuple[grpc.StatusCode, grpc.StatusCode, bytes]:
    """(health Check status, Invoke status, Invoke result) from one client."""
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    stub, request = _invoke(home, stack)
    with channel:
        codes = []
        result = b""
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAMES[home]), timeout=CALL_TIMEOUT
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
        try:
            invoked = stub(channel).Invoke(request, timeout=CALL_TIMEOUT)
            assert invoked.WhichOneof("outcome") == "result", invoked
            codes.append(grpc.StatusCode.OK)
            result = invoked.result
        except grpc.RpcError as error:
            codes.append(error.code())
    return codes[0], codes[1], result


@pytest.mark.parametrize(
    ("deployed", "home"),
    [("layered", "repository"), ("layered", "service"), ("microservices", "service")],
    indirect=["deployed"],
)
def test_internal_ports_admit_only_the_tiers_certificate(deployed: LiveStack, home: str) -> None:
    if deployed.mode == "microservices":  # users' internal server: users.service
        address = deployed.tiers["users"][2].address
    elif home == "repository":
        address = deployed.repository_address
    else:
        address = deployed.service_addresses[0]
    outcomes = {
        name: _attempt(address, credentials, home, deployed)
        for name, credentials in _clients(deployed).items()
    }
    refused = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, b"")
    assert outcomes.pop("tier certificate")[:2] == (grpc.StatusCode.OK, grpc.StatusCode.OK)
    assert outcomes == {name: refused for name in outcomes}, outcomes
