"""``manage.py grpcrunserver`` as operators run it: a separate process on a
migrated SQLite file, health over the wire, SIGTERM -> clean exit within the grace."""

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arcana.grpc.management.commands import grpcrunserver as command_module
from arcana.grpc.management.commands.grpcrunserver import parse_address
from arcana.grpc.server import ArcanaServer
from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.grpc.conftest import Pki, channel_credentials

GRACE = 3.0
MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    database = tmp_path_factory.mktemp("grpc") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arcana.settings.test",
        "DATABASE_URL": f"sqlite:///{database}",
        # Fixed keys for the child: the test settings would otherwise make random ones.
        "DJANGO_SECRET_KEY": "test-secret-key-for-the-grpc-subprocess-0123456789",
        "JWT_SIGNING_KEY": "test-jwt-key-for-the-grpc-subprocess-0123456789",
        "GRPC_SHUTDOWN_GRACE": str(GRACE),
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [sys.executable, MANAGE, "migrate", "--no-input", "-v", "0"],
        env=env,
        check=True,
        timeout=120,
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def run_server(server_env: dict[str, str]) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> tuple[subprocess.Popen[str], int]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, MANAGE, "grpcrunserver", f"127.0.0.1:{port}", *args],
            env=server_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process, port

    yield run
    for process in started:  # never leave a server behind, whatever failed
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def wait_serving(port: int, timeout: float = 30) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            return


def register(port: int, email: str) -> auth_pb2.TokenPair:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = auth_pb2.RegisterRequest(
            name="Proc", email=email, password="a long and unusual passphrase 42"
        )
        pair: auth_pb2.TokenPair = AuthServiceStub(channel).Register(request, timeout=10)
        return pair


def stop(process: subprocess.Popen[str]) -> tuple[int, float, str]:
    begun = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=GRACE + 10)
    output = process.stdout.read() if process.stdout else ""
    return code, time.monotonic() - begun, output


def test_serves_and_stops_cleanly_on_sigterm(run_server) -> None:
    process, port = run_server()
    wait_serving(port)
    pair = register(port, "proc@example.com")
    assert pair.user.email == "proc@example.com"
    code, took, output = stop(process)
    assert code == 0, output
    assert took < GRACE + 2
    assert f"listening on port {port}" in output


def test_workers_share_one_port(run_server) -> None:
    process, port = run_server("--workers", "2", "--max-workers", "2")
    wait_serving(port)
    register(port, "workers@example.com")
    code, took, output = stop(process)
    assert code == 0, output
    assert took < GRACE + 2
    assert "worker pids" in output


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("50052", "127.0.0.1:50052"),
        ("0.0.0.0:7000", "0.0.0.0:7000"),
        (":7000", "127.0.0.1:7000"),
        ("[::]:7000", "[::]:7000"),
    ],
)
def test_parse_address(value: str, address: str) -> None:
    assert parse_address(value) == address


@pytest.mark.parametrize("value", ["host", "host:port", "1.2.3.4:70000"])
def test_parse_address_rejects(value: str) -> None:
    with pytest.raises(CommandError):
        parse_address(value)


# --- the same command in this process (for coverage and the failure paths) ----------------


@pytest.fixture
def own_signals() -> Iterator[None]:
    """The command installs SIGTERM/SIGINT handlers; give pytest its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_command_in_process_stops_on_sigterm(own_signals: None) -> None:
    port = free_port()
    failures: list[BaseException] = []

    def probe_then_terminate() -> None:
        try:
            wait_serving(port)
        except BaseException as exc:  # reported below, on the test thread
            failures.append(exc)
        os.kill(os.getpid(), signal.SIGTERM)

    prober = threading.Thread(target=probe_then_terminate)
    prober.start()
    out = io.StringIO()
    call_command("grpcrunserver", f"127.0.0.1:{port}", "--grace", "1", stdout=out)
    prober.join(timeout=10)
    assert failures == []
    assert f"listening on port {port}" in out.getvalue()


def test_command_refuses_a_busy_port(grpc_server: ArcanaServer, own_signals: None) -> None:
    with pytest.raises(CommandError, match="cannot listen"):
        call_command("grpcrunserver", f"127.0.0.1:{grpc_server.port}", stdout=io.StringIO())


def test_command_workers_need_a_fixed_port() -> None:
    with pytest.raises(CommandError, match="fixed port"):
        call_command("grpcrunserver", "127.0.0.1:0", "--workers", "2")


# --- limits and reflection reach the server ------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What the command hands to ``serve``, without serving."""
    seen: dict[str, object] = {}

    def fake_serve(address: str, **options: object) -> None:
        seen.update(options, address=address)

    monkeypatch.setattr(command_module, "serve", fake_serve)
    return seen


def test_command_passes_limits_and_reflection(served: dict[str, object]) -> None:
    call_command(
        "grpcrunserver",
        "127.0.0.1:0",
        "--max-streams",
        "3",
        "--max-concurrent-rpcs",
        "9",
        "--no-reflection",
    )
    assert served["max_streams"] == 3
    assert served["max_concurrent_rpcs"] == 9
    assert served["reflection"] is False


def test_command_reflection_follows_the_setting(served: dict[str, object]) -> None:
    call_command("grpcrunserver", "127.0.0.1:0")
    assert served["reflection"] is settings.GRPC_REFLECTION is True
    assert served["max_streams"] == settings.GRPC_MAX_STREAMS


def test_command_refuses_limits_with_no_room_for_unary_calls() -> None:
    with pytest.raises(CommandError, match="must exceed --max-streams"):
        call_command(
            "grpcrunserver", "127.0.0.1:0", "--max-streams", "5", "--max-concurrent-rpcs", "5"
        )


# --- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "cert"], "--tls-key is missing"),
        (["--tls-key", "key"], "--tls-cert is missing"),
        (["--tls-client-ca", "client_ca"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "missing", "--tls-key", "key"], "cannot read TLS certificate"),
        (["--tls-cert", "cert", "--tls-key", "junk"], "not an unencrypted PEM private key"),
        (
            ["--tls-cert", "cert", "--tls-key", "key", "--tls-client-ca", "missing"],
            "cannot read TLS client CA",
        ),
    ],
)
def test_command_checks_the_tls_flags(
    served: dict[str, object], pem_files: dict[str, str], flags: list[str], message: str
) -> None:
    paths = {**pem_files, "missing": "/nonexistent/file.pem"}
    args = [paths.get(flag, flag) for flag in flags]
    with pytest.raises(CommandError, match=message) as caught:
        call_command("grpcrunserver", "127.0.0.1:0", *args)
    assert "\n" not in str(caught.value)
    assert served == {}  # nothing was started


def test_command_tls_flags_reach_the_server(
    served: dict[str, object], pem_files: dict[str, str], pki: Pki
) -> None:
    call_command(
        "grpcrunserver",
        "127.0.0.1:0",
        *("--tls-cert", pem_files["cert"], "--tls-key", pem_files["key"]),
        *("--tls-client-ca", pem_files["client_ca"]),
    )
    assert served["tls"] == pki.files(mutual=True)


def test_command_tls_comes_from_the_settings(
    served: dict[str, object], pem_files: dict[str, str], pki: Pki, settings: Any
) -> None:
    settings.GRPC_TLS_CERT = pem_files["cert"]
    settings.GRPC_TLS_KEY = pem_files["key"]
    call_command("grpcrunserver", "127.0.0.1:0")
    assert served["tls"] == pki.files()


def test_command_without_tls_serves_plaintext(served: dict[str, object]) -> None:
    call_command("grpcrunserver", "127.0.0.1:0")
    assert served["tls"] is None


def test_serves_mutual_tls_from_the_environment(
    run_server: Any, server_env: dict[str, str], pem_files: dict[str, str], pki: Pki
) -> None:
    """As deployed: GRPC_TLS_* read by django-environ in a real process."""
    server_env.update(
        GRPC_TLS_CERT=pem_files["cert"],
        GRPC_TLS_KEY=pem_files["key"],
        GRPC_TLS_CLIENT_CA=pem_files["client_ca"],
    )
    try:
        process, port = run_server()
    finally:
        for name in ("GRPC_TLS_CERT", "GRPC_TLS_KEY", "GRPC_TLS_CLIENT_CA"):
            server_env.pop(name)
    credentials = channel_credentials(pki.ca, pki.client)
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    code, took, output = stop(process)
    assert code == 0, output
    assert took < GRACE + 2
    assert "(mutual TLS" in output
