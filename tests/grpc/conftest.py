"""A real gRPC server in this process (port 0, production interceptors) and a
real channel to it.

The server answers on its own worker threads, each with its own database
connection, so tests that use it must be transactional: their data has to be
committed to be seen. ``serialized_rollback`` brings back the rows migrations
seeded (the roles) after each test's flush.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from django.conf import settings
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arcana.grpc.server import ArcanaServer, TlsFiles, build_server
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2_grpc
from tests.conftest import tokens_for
from tests.factories import DEFAULT_PASSWORD
from users.models import User

# Apply to every test that talks to the live server.
live_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def start_server(**overrides: Any) -> ArcanaServer:
    options: dict[str, Any] = {
        "max_workers": 4,
        "max_message_bytes": settings.GRPC_MAX_MESSAGE_BYTES,
        **overrides,
    }
    server = build_server("127.0.0.1:0", **options)
    server.start()
    return server


@pytest.fixture(scope="session")
def grpc_server() -> Iterator[ArcanaServer]:
    """One server for the session: it holds no state between calls.

    Its database watcher is slowed to a crawl: between tests pytest-django
    blocks database access, which the watcher would report as an outage
    (test_health_watch covers the watcher with a server of its own).
    """
    server = start_server(health_interval=3600)
    yield server
    server.stop(grace=0).wait()


@pytest.fixture(scope="session")
def grpc_channel(grpc_server: ArcanaServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="session")
def users_stub(grpc_channel: grpc.Channel) -> users_pb2_grpc.UserServiceStub:
    return users_pb2_grpc.UserServiceStub(grpc_channel)


@pytest.fixture(scope="session")
def auth_stub(grpc_channel: grpc.Channel) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(grpc_channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def auth_for(user: User) -> tuple[tuple[str, str], ...]:
    """Metadata carrying a fresh access token of ``user``."""
    return bearer(tokens_for(user).access)


def rpc_error(call: Any, request: Any, **kwargs: Any) -> grpc.RpcError:
    """Make the call, which must fail, and return its error."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, **kwargs)
    error: grpc.RpcError = caught.value
    return error


def trailer(error: grpc.RpcError, key: str) -> str | bytes | None:
    """One trailing metadata value of a failed call."""
    for item in error.trailing_metadata() or ():
        if item.key == key:
            value: str | bytes = item.value
            return value
    return None


def login(auth_stub: auth_pb2_grpc.AuthServiceStub, user: User) -> auth_pb2.TokenPair:
    request = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
    pair: auth_pb2.TokenPair = auth_stub.Login(request, timeout=10)
    return pair


# --- TLS: a throwaway PKI -------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A server CA and certificate, a client CA and certificate, and a stranger's CA."""

    ca: trustme.CA
    server: trustme.LeafCert
    client_ca: trustme.CA
    client: trustme.LeafCert
    stranger: trustme.CA

    def files(self, *, mutual: bool = False) -> TlsFiles:
        return TlsFiles(
            cert_chain=self.server.cert_chain_pems[0].bytes(),
            private_key=self.server.private_key_pem.bytes(),
            client_ca=self.client_ca.cert_pem.bytes() if mutual else None,
        )


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, client_ca = trustme.CA(), trustme.CA()
    return Pki(
        ca=ca,
        server=ca.issue_cert("127.0.0.1", "localhost"),
        client_ca=client_ca,
        client=client_ca.issue_cert("internal-caller@example.com"),
        stranger=trustme.CA(),
    )


@pytest.fixture
def pem_files(pki: Pki, tmp_path: Path) -> dict[str, str]:
    paths = {
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "client_ca": tmp_path / "clients-ca.pem",
        "other_key": tmp_path / "other.key",
        "junk": tmp_path / "junk.pem",
    }
    pki.server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    pki.server.private_key_pem.write_to_path(str(paths["key"]))
    pki.client_ca.cert_pem.write_to_path(str(paths["client_ca"]))
    pki.client.private_key_pem.write_to_path(str(paths["other_key"]))
    paths["junk"].write_text("not a certificate\n")
    return {name: str(path) for name, path in paths.items()}


def health_over(channel: grpc.Channel, service: str = "") -> int:
    """The health status of ``service`` (the whole server by default) over ``channel``."""
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def refused(channel: grpc.Channel, service: str = "") -> grpc.StatusCode:
    """The status a health check that must fail failed with."""
    with pytest.raises(grpc.RpcError) as caught:
        health_over(channel, service)
    code: grpc.StatusCode = caught.value.code()
    return code


def channel_credentials(
    trusted: trustme.CA, client: trustme.LeafCert | None = None
) -> grpc.ChannelCredentials:
    """Trust ``trusted``; present ``client`` (mutual TLS) when given."""
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=trusted.cert_pem.bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=trusted.cert_pem.bytes(),
        private_key=client.private_key_pem.bytes(),
        certificate_chain=client.cert_chain_pems[0].bytes(),
    )
