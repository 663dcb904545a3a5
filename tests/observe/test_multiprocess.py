"""Servers that fork workers report the sum of them all: ``grpcrunserver
--workers 2`` on its metrics port, gunicorn with two workers at ``/metrics``."""

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from django.conf import settings

from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.commands import child_env
from tests.grpc.test_command import wait_serving
from tests.observe.scrape import sample, scrape, side_ports
from tests.support.waiting import wait_for

ROOT = Path(settings.BASE_DIR)
CALLS = 20


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path, command: list[str], **extra: str
) -> None:
    env = child_env(
        "arcana.settings.test",
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DJANGO_SECRET_KEY": "test-secret-key-for-the-metrics-subprocess-0123456789",
            "JWT_SIGNING_KEY": "test-jwt-key-for-the-metrics-subprocess-0123456789",
            **extra,
        },
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    log = (tmp_path / "server.log").open("wb")
    processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log))


def _pids_counted(directory: Path) -> set[str]:
    return {name.split("_", 1)[1] for name in os.listdir(directory) if name.startswith("counter_")}


def test_grpc_workers_are_summed_on_one_metrics_port(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port, metrics_port = side_ports(2)
    command = [sys.executable, "manage.py", "grpcrunserver", f"127.0.0.1:{port}", "--workers", "2"]
    _start(processes, tmp_path, command, GRPC_METRICS_PORT=str(metrics_port))
    wait_serving(port)
    for _ in range(CALLS):
        # A channel per call: a new connection, which the kernel gives either worker.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as refused:
                UserServiceStub(channel).GetUser(users_pb2.GetUserRequest(id="x"), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    text = scrape(metrics_port)
    labels = {"method": "/arcana.v1.UserService/GetUser", "code": "UNAUTHENTICATED"}
    assert sample(text, "arcana_grpc_calls_total", **labels) == CALLS
    assert sample(text, "arcana_grpc_in_flight_calls") == 0


def test_gunicorn_workers_are_summed_at_metrics(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port, metrics_port = side_ports(2)
    directory = tmp_path / "metrics"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "bench/gunicorn_conf.py",  # the deployed one, without the access log
        "arcana.wsgi:application",
    ]
    _start(
        processes,
        tmp_path,
        command,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        REST_METRICS_PORT=str(metrics_port),
    )

    def get(path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def up() -> bool:
        try:
            return get("/healthz")[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=30)
    before = sample(get("/metrics")[1], "arcana_http_requests_total", route="healthz")
    sent = 0
    # Concurrent batches until both workers have answered some (each counts
    # into a file of its own), so that the sum is one over two processes.
    until = time.monotonic() + 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(_pids_counted(directory)) < 2 and time.monotonic() < until:
            assert set(pool.map(lambda _: get("/healthz")[0], range(16))) == {200}
            sent += 16
    assert len(_pids_counted(directory)) == 2
    status, text = get("/metrics")
    assert status == 200
    assert sample(text, "arcana_http_requests_total", route="healthz") == before + sent
    # The master's own metrics port (REST_METRICS_PORT) sums the same files.
    master = scrape(metrics_port)
    assert sample(master, "arcana_http_requests_total", route="healthz") == before + sent
