"""The internal server a tier's ``tierserver`` runs (``build_server(internal=...)``):
its tier's boundaries and health only, on mutual TLS from ``ARCANA_INTERNAL_TLS_*``."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from arcana.core import internal
from arcana.grpc.server import ArcanaServer, build_server
from authn.interfaces import AuthRepositoryInterface
from protos.arcana.v1 import users_pb2, users_pb2_grpc
from tests.grpc.conftest import Pki, channel_credentials, health_over, refused
from tests.internal.conftest import live_db, remote

SERVING = health_pb2.HealthCheckResponse.SERVING
REPOSITORY = "arcana.internal.v1.Repository"
NOBODY = "00000000-0000-0000-0000-000000000000"


def internal_server(home: str = "repository") -> ArcanaServer:
    server = build_server(
        "127.0.0.1:0",
        max_workers=2,
        max_message_bytes=settings.GRPC_MAX_MESSAGE_BYTES,
        health_interval=3600,  # the watcher is tests/test_tiers.py's
        internal=home,
    )
    server.start()
    return server


@pytest.fixture
def mtls_server(tls_settings: Pki) -> Iterator[ArcanaServer]:
    server = internal_server()
    yield server
    server.stop(grace=0).wait()


def test_it_serves_mutual_tls_to_a_tier_the_ca_signed(mtls_server: ArcanaServer, pki: Pki) -> None:
    assert mtls_server.security == "mutual TLS"
    service_tier = pki.ca.issue_cert("service.internal")
    address = f"127.0.0.1:{mtls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.ca, service_tier)) as channel:
        assert health_over(channel, REPOSITORY) == SERVING
        assert health_over(channel, "") == SERVING


def test_a_client_without_a_certificate_is_refused(mtls_server: ArcanaServer, pki: Pki) -> None:
    address = f"127.0.0.1:{mtls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.ca)) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused(mtls_server: ArcanaServer, pki: Pki) -> None:
    outsider = pki.stranger.issue_cert("service.internal")
    address = f"127.0.0.1:{mtls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.ca, outsider)) as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_is_refused(mtls_server: ArcanaServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{mtls_server.port}") as channel:
        assert refused(channel) == grpc.StatusCode.UNAVAILABLE


@live_db
def test_a_boundary_call_with_the_tiers_own_credentials(mtls_server: ArcanaServer) -> None:
    """What the service tier does: its client credentials from the same settings."""
    target, credentials = f"127.0.0.1:{mtls_server.port}", internal.channel_credentials()
    client = remote("authn.repo", AuthRepositoryInterface, target, credentials=credentials)
    try:
        assert client.refresh_tokens_revoke_all(user_id=NOBODY) == 0
    finally:
        client.close()


def test_it_serves_none_of_the_public_services(mtls_server: ArcanaServer, pki: Pki) -> None:
    """No UserService, AuthService or reflection on a tier's internal port."""
    address = f"127.0.0.1:{mtls_server.port}"
    with grpc.secure_channel(address, channel_credentials(pki.ca, pki.server)) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            users_pb2_grpc.UserServiceStub(channel).GetUser(
                users_pb2.GetUserRequest(id=NOBODY), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert refused(channel, "arcana.v1.UserService") == grpc.StatusCode.NOT_FOUND
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([listing]), timeout=5
        )
        with pytest.raises(grpc.RpcError) as reflection:
            list(replies)
        assert reflection.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_internal_server_needs_tls_or_an_explicit_plaintext(settings: Any) -> None:
    settings.ARCANA_INTERNAL_TLS_CERT = ""
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, internal_insecure=False
    )
    with pytest.raises(ImproperlyConfigured, match="internal calls need mutual TLS"):
        internal_server()
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, internal_insecure=True
    )
    plaintext = internal_server("service")
    try:
        assert plaintext.security == "plaintext"
        with grpc.insecure_channel(f"127.0.0.1:{plaintext.port}") as channel:
            assert health_over(channel, "arcana.internal.v1.Service") == SERVING
            # The service tier serves only its own.
            assert refused(channel, REPOSITORY) == grpc.StatusCode.NOT_FOUND
    finally:
        plaintext.stop(grace=0).wait()


@pytest.mark.parametrize(
    ("setting", "content", "message"),
    [
        (
            "ARCANA_INTERNAL_TLS_CERT",
            "junk",
            r"^ARCANA_INTERNAL_TLS_CERT: TLS certificate \S+ holds no PEM certificate\.$",
        ),
        (
            "ARCANA_INTERNAL_TLS_KEY",
            "junk",
            r"^ARCANA_INTERNAL_TLS_KEY: TLS key \S+ is not an unencrypted PEM private key",
        ),
        (
            "ARCANA_INTERNAL_TLS_KEY",
            "another key",
            r"^ARCANA_INTERNAL_TLS_KEY: TLS key \S+ does not belong to the certificate in \S+\.$",
        ),
        (
            "ARCANA_INTERNAL_TLS_CA",
            "junk",
            r"^ARCANA_INTERNAL_TLS_CA: TLS CA \S+ holds no PEM certificate\.$",
        ),
    ],
    ids=["junk-cert", "junk-key", "key-of-another-cert", "junk-ca"],
)
def test_a_bad_tls_file_is_named_before_grpc_sees_it(
    tls_settings: Pki, tmp_path: Path, settings: Any, setting: str, content: str, message: str
) -> None:
    """grpc would say only that it cannot listen (the server) or connect (a client)."""
    bad = tmp_path / "bad.pem"
    if content == "another key":
        tls_settings.client.private_key_pem.write_to_path(str(bad))
    else:
        bad.write_text("not a PEM file\n")
    setattr(settings, setting, str(bad))
    with pytest.raises(ImproperlyConfigured, match=message):
        internal_server()
    with pytest.raises(ImproperlyConfigured, match=message):
        internal.channel_credentials()
