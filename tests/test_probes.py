"""docker/healthcheck.py as the Kubernetes pods' exec probe (docker/k8s) and the
containers' gRPC health check, against a real gRPC health server on loopback:
plaintext for the public port, mutual TLS with a tier's own certificate for
the internal ports. (tests/test_image.py covers its roles and detection.)"""

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

PROBE = Path(__file__).resolve().parent.parent / "docker" / "healthcheck.py"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _load_probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck_probe", PROBE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load_probe()


@dataclass
class Health:
    port: int
    servicer: health.HealthServicer

    def set(self, status: int, service: str = "") -> None:
        self.servicer.set(service, status)


def _serve(credentials: grpc.ServerCredentials | None) -> Iterator[Health]:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield Health(port=port, servicer=servicer)
    finally:
        server.stop(grace=0).wait()


@pytest.fixture
def plain() -> Iterator[Health]:
    yield from _serve(None)


@dataclass(frozen=True)
class Tier:
    """A tier's PEM files as mounted from its Secret, and the env naming them."""

    env: dict[str, str]
    ca: trustme.CA


def _write_tier(directory: Path, ca: trustme.CA, leaf: trustme.LeafCert) -> dict[str, str]:
    directory.mkdir()
    leaf.cert_chain_pems[0].write_to_path(str(directory / "tls.crt"))
    leaf.private_key_pem.write_to_path(str(directory / "tls.key"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    return {
        "ARCANA_INTERNAL_TLS_CERT": str(directory / "tls.crt"),
        "ARCANA_INTERNAL_TLS_KEY": str(directory / "tls.key"),
        "ARCANA_INTERNAL_TLS_CA": str(directory / "ca.crt"),
    }


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def service_cert(ca: trustme.CA) -> trustme.LeafCert:
    # As in production: the name callers dial first, the cluster-wide name after.
    return ca.issue_cert("service", "service.arcana.svc.cluster.local")


@pytest.fixture
def tier(tmp_path: Path, ca: trustme.CA, service_cert: trustme.LeafCert) -> Tier:
    return Tier(env=_write_tier(tmp_path / "tier", ca, service_cert), ca=ca)


@pytest.fixture
def mtls(ca: trustme.CA, service_cert: trustme.LeafCert) -> Iterator[Health]:
    credentials = grpc.ssl_server_credentials(
        [(service_cert.private_key_pem.bytes(), service_cert.cert_chain_pems[0].bytes())],
        root_certificates=ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    yield from _serve(credentials)


def run(
    role: str,
    port: int | None = None,
    *,
    alive: bool = False,
    service: str = "",
    env: dict[str, str] | None = None,
) -> int:
    """The probe's exit status: 0 healthy, 1 not."""
    try:
        healthcheck.check(role, port, env or {}, service=service, alive=alive)
    except healthcheck.Unhealthy:
        return 1
    return 0


# --- plaintext: the public gRPC port ----------------------------------------------------


def test_ready_only_while_serving(plain: Health) -> None:
    plain.set(SERVING)
    assert run("grpc", plain.port) == 0
    plain.set(NOT_SERVING)
    assert run("grpc", plain.port) == 1


def test_alive_while_not_serving(plain: Health) -> None:
    """A database outage turns health NOT_SERVING: out of rotation, not restarted."""
    plain.set(NOT_SERVING)
    assert run("grpc", plain.port, alive=True) == 0


def test_a_named_service_is_checked(plain: Health) -> None:
    plain.set(SERVING)
    plain.set(NOT_SERVING, "arcana.internal.v1.Service")
    assert run("grpc", plain.port, service="arcana.internal.v1.Service") == 1
    assert run("grpc", plain.port, service="no.such.Service") == 1  # NOT_FOUND
    plain.set(SERVING, "arcana.internal.v1.Service")
    assert run("grpc", plain.port, service="arcana.internal.v1.Service") == 0


def test_a_draining_server_is_alive_but_not_ready(plain: Health) -> None:
    plain.set(SERVING)
    plain.servicer.enter_graceful_shutdown()  # what the servers do on SIGTERM
    assert run("grpc", plain.port) == 1
    assert run("grpc", plain.port, alive=True) == 0


def test_nothing_listening_fails_even_alive() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert run("grpc", port, alive=True) == 1  # bound, not listening


# --- mutual TLS: an internal tier port ------------------------------------------------------


def test_tier_probe_uses_its_own_certificate_and_tier_port(mtls: Health, tier: Tier) -> None:
    """The server presents the pod's own certificate: its first DNS name is checked."""
    mtls.set(SERVING)
    env = {**tier.env, "TIER_PORT": str(mtls.port)}
    assert run("tier", env=env) == 0
    mtls.set(NOT_SERVING)
    assert run("tier", env=env) == 1
    assert run("tier", alive=True, env=env) == 0


def test_plaintext_against_a_tls_port_fails(mtls: Health) -> None:
    mtls.set(SERVING)
    assert run("grpc", mtls.port, alive=True) == 1


def test_a_certificate_of_another_ca_is_refused(mtls: Health, tmp_path: Path) -> None:
    stranger = trustme.CA()
    env = _write_tier(tmp_path / "stranger", stranger, stranger.issue_cert("service"))
    mtls.set(SERVING)
    assert run("tier", mtls.port, alive=True, env=env) == 1


def test_the_server_must_hold_the_expected_name(mtls: Health, tier: Tier) -> None:
    mtls.set(SERVING)
    other = {"ARCANA_HEALTHCHECK_TLS_NAME": "service.arcana.svc.cluster.local"}
    assert run("tier", mtls.port, env={**tier.env, **other}) == 0
    wrong = {"ARCANA_HEALTHCHECK_TLS_NAME": "repository"}
    assert run("tier", mtls.port, env={**tier.env, **wrong}) == 1


def test_missing_or_unusable_settings_are_unhealthy(tier: Tier, tmp_path: Path) -> None:
    assert run("tier", env=tier.env) == 1  # no port and no TIER_PORT
    assert run("tier", env={**tier.env, "TIER_PORT": "http"}) == 1
    assert run("tier", 50052) == 1  # no TLS files
    missing = {**tier.env, "ARCANA_INTERNAL_TLS_KEY": str(tmp_path / "absent.key")}
    assert run("tier", 50052, env=missing) == 1


def test_runs_as_a_script(plain: Health) -> None:
    """The kubelet runs it as `python /app/docker/healthcheck.py grpc --alive`."""
    plain.set(NOT_SERVING)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}

    def probe(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(PROBE), "grpc", "--port", str(plain.port), *flags],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    ready = probe()
    assert ready.returncode == 1
    assert "not SERVING" in ready.stderr
    assert probe("--alive").returncode == 0
