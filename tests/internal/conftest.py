"""A real internal gRPC server on loopback (port 0) serving the local
repositories, and clients of it (``arcana.core.internal``).

The server answers on its own threads with their own database connections, so
the tests that use it are transactional (see tests/grpc/conftest.py).
"""

import dataclasses
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

import authn
import users
from arcana.core import delegation
from arcana.core.internal import BoundaryServicer, RemoteBoundary
from arcana.modes import Mode, Tier
from protos.arcana.internal.v1 import boundary_pb2, boundary_pb2_grpc

# Fixtures reused from the public server's tests: its PKI, the server and a stub.
from tests.grpc.conftest import Pki, grpc_channel, grpc_server, pki, users_stub  # noqa: F401

live_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)

USER_READS = ("user_get", "user_credentials", "user_password_hash", "user_list")


class RecordingServicer(BoundaryServicer):
    """Notes every (boundary, method) that reached the tier, and the metadata it came with."""

    def __init__(self, boundaries: Any) -> None:
        super().__init__(boundaries)
        self.calls: list[tuple[str, str]] = []
        self.metadata: list[dict[str, str]] = []

    def Invoke(
        self, request: boundary_pb2.InvokeRequest, context: grpc.ServicerContext
    ) -> boundary_pb2.InvokeReply:
        self.calls.append((request.boundary, request.method))
        self.metadata.append(
            {
                key: value
                for key, value in context.invocation_metadata()
                if key.startswith("x-") and isinstance(value, str)
            }
        )
        return super().Invoke(request, context)


@dataclass
class Flaky(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses the next ``failures`` calls with UNAVAILABLE."""

    failures: int = 0
    seen: int = 0
    refused: list[int] = field(default_factory=list)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        self.seen += 1
        if self.failures > 0:
            self.failures -= 1
            self.refused.append(self.seen)

            def refuse(request: Any, context: grpc.ServicerContext) -> Any:
                context.abort(grpc.StatusCode.UNAVAILABLE, "flaky")

            return grpc.unary_unary_rpc_method_handler(
                refuse,
                request_deserializer=boundary_pb2.InvokeRequest.FromString,
                response_serializer=boundary_pb2.InvokeReply.SerializeToString,
            )
        return continuation(handler_call_details)


@dataclass
class Hop:
    server: grpc.Server
    port: int
    servicer: RecordingServicer
    flaky: Flaky

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def methods(self) -> list[str]:
        return [method for _, method in self.servicer.calls]


_ADD_SERVICER = {
    "repository": boundary_pb2_grpc.add_RepositoryServicer_to_server,
    "service": boundary_pb2_grpc.add_ServiceServicer_to_server,
}


def start_hop(
    boundaries: Any = None,
    credentials: grpc.ServerCredentials | None = None,
    *,
    home: str = "repository",
    address: str = "127.0.0.1:0",
) -> Hop:
    """Tier ``home``'s internal server (its own boundaries unless ``boundaries``)."""
    flaky = Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[flaky])
    servicer = RecordingServicer(
        delegation.served_boundaries(home) if boundaries is None else boundaries
    )
    _ADD_SERVICER[home](servicer, server)
    port = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    server.start()
    return Hop(server=server, port=port, servicer=servicer, flaky=flaky)


def remote(
    boundary: str,
    interface: type,
    target: str,
    *,
    reads: tuple[str, ...] = (),
    deadline: float = 2.0,
    credentials: grpc.ChannelCredentials | None = None,
    home: str = "repository",
) -> Any:
    """A client of ``target`` (typed Any: its methods are the Protocol's, set at
    run time), called from the tier above ``home``."""
    return RemoteBoundary(
        boundary,
        interface,
        home=home,
        reads=reads,
        targets=(target,),
        deadline=deadline,
        credentials=credentials,
        caller_tier="controller" if home == "service" else "service",
    )


@contextmanager
def serving_tier(
    monkeypatch: pytest.MonkeyPatch, app: ModuleType, interface: type
) -> Iterator[Hop]:
    """``app.service`` is a client of a service tier's internal server (as at the
    edge) for the block; the server serves the local services."""
    started = start_hop(home="service")
    client = remote(f"{app.__name__}.service", interface, started.target, home="service")
    monkeypatch.setattr(app, "service", client)
    try:
        yield started
    finally:
        client.close()
        started.server.stop(None)


def deploy_as(settings: Any, tier: str, **fields: Any) -> None:
    """This process as layered mode's ``tier`` (plaintext internal calls
    allowed), with ``fields`` of ``Deployment`` such as the peer targets;
    the test's ``settings`` fixture restores the real deployment."""
    settings.ARCANA_INTERNAL_TLS_CERT = ""
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT,
        mode=Mode.LAYERED,
        tier=Tier(tier),
        internal_insecure=True,
        **fields,
    )


@pytest.fixture
def hop() -> Iterator[Hop]:
    started = start_hop()
    yield started
    started.server.stop(None)


@pytest.fixture
def across(hop: Hop, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hop]:
    """``users.repo`` and ``authn.repo`` are clients of ``hop``: the services
    (still local) reach their data only across it."""
    from authn.interfaces import AuthRepositoryInterface
    from users.interfaces import UserRepositoryInterface

    clients = [
        remote("users.repo", UserRepositoryInterface, hop.target, reads=USER_READS),
        remote("authn.repo", AuthRepositoryInterface, hop.target),
    ]
    monkeypatch.setattr(users, "repo", clients[0])
    monkeypatch.setattr(authn, "repo", clients[1])
    yield hop
    for client in clients:
        client.close()


@pytest.fixture
def tls_settings(pki: Pki, tmp_path: Path, settings: Any) -> Pki:  # noqa: F811 - the fixture
    """ARCANA_INTERNAL_TLS_*: one CA (``pki.ca``) signs every tier's certificate;
    this process uses one (``pki.server``, for 127.0.0.1) for both ends."""
    cert, key, ca = tmp_path / "tier.pem", tmp_path / "tier.key", tmp_path / "ca.pem"
    pki.server.cert_chain_pems[0].write_to_path(str(cert))
    pki.server.private_key_pem.write_to_path(str(key))
    pki.ca.cert_pem.write_to_path(str(ca))
    settings.ARCANA_INTERNAL_TLS_CERT = str(cert)
    settings.ARCANA_INTERNAL_TLS_KEY = str(key)
    settings.ARCANA_INTERNAL_TLS_CA = str(ca)
    return pki
