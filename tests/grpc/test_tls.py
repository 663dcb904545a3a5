"""TLS and mutual TLS on the gRPC server, with certificates from a throwaway CA
(trustme), and the checks on the files before anything listens."""

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2

from arcana.core.pem import TlsError
from arcana.grpc.server import ArcanaServer, TlsFiles
from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import (
    Pki,
    channel_credentials,
    health_over,
    live_db,
    refused,
    start_server,
)
from users.models import User

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[ArcanaServer]:
    server = start_server(health_interval=3600, tls=pki.files())
    yield server
    server.stop(grace=0).wait()


@pytest.fixture
def mtls_server(pki: Pki) -> Iterator[ArcanaServer]:
    server = start_server(health_interval=3600, tls=pki.files(mutual=True))
    yield server
    server.stop(grace=0).wait()


# --- TLS ------------------------------------------------------------------------------------


def test_tls_call_works_with_the_ca(tls_server: ArcanaServer, pki: Pki) -> None:
    assert tls_server.security == "TLS"
    with grpc.secure_channel(
        f"127.0.0.1:{tls_server.port}", channel_credentials(pki.ca)
    ) as channel:
        assert health_over(channel) == SERVING


@live_db
def test_login_over_tls(tls_server: ArcanaServer, pki: Pki, user: User) -> None:
    """The interceptors (throttle, client address) work on a TLS peer too."""
    with grpc.secure_channel(
        f"127.0.0.1:{tls_server.port}", channel_credentials(pki.ca)
    ) as channel:
        request = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
        assert AuthServiceStub(channel).Login(request, timeout=10).user.email == user.email


def test_plaintext_client_fails(tls_server: ArcanaServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{tls_server.port}") as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_client_not_trusting_the_servers_ca_fails(tls_server: ArcanaServer, pki: Pki) -> None:
    address = f"127.0.0.1:{tls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.stranger)) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


# --- mutual TLS -----------------------------------------------------------------------------


def test_mtls_without_a_client_certificate_fails(mtls_server: ArcanaServer, pki: Pki) -> None:
    assert mtls_server.security == "mutual TLS"
    with grpc.secure_channel(
        f"127.0.0.1:{mtls_server.port}", channel_credentials(pki.ca)
    ) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_mtls_with_a_client_certificate_works(mtls_server: ArcanaServer, pki: Pki) -> None:
    address = f"127.0.0.1:{mtls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.ca, pki.client)) as channel:
        assert health_over(channel) == SERVING


def test_mtls_with_a_certificate_from_another_ca_fails(mtls_server: ArcanaServer, pki: Pki) -> None:
    outsider = pki.stranger.issue_cert("outsider@example.com")
    address = f"127.0.0.1:{mtls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.ca, outsider)) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


# --- reading and checking the files ----------------------------------------------------------


def test_read_gives_the_file_contents(pem_files: dict[str, str], pki: Pki) -> None:
    files = TlsFiles.read(
        cert=pem_files["cert"], key=pem_files["key"], client_ca=pem_files["client_ca"]
    )
    assert files == pki.files(mutual=True)
    assert files.mutual


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "message"),
    [
        ("missing", "key", None, "cannot read TLS certificate"),
        ("cert", "missing", None, "cannot read TLS key"),
        ("cert", "key", "missing", "cannot read TLS client CA"),
        ("junk", "key", None, "holds no PEM certificate"),
        ("cert", "junk", None, "is not an unencrypted PEM private key"),
        ("cert", "other_key", None, "does not belong to the certificate"),
        ("cert", "key", "junk", "client CA .* holds no PEM certificate"),
    ],
)
def test_read_refuses_bad_files(
    pem_files: dict[str, str], cert: str, key: str, client_ca: str | None, message: str
) -> None:
    paths = {**pem_files, "missing": "/nonexistent/file.pem"}
    with pytest.raises(TlsError, match=message) as caught:
        TlsFiles.read(
            cert=paths[cert], key=paths[key], client_ca=paths[client_ca] if client_ca else None
        )
    assert "\n" not in str(caught.value)
