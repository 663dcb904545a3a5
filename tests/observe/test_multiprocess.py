"""Servers that fork workers report the sum of them all: ``grpcrunserver
--workers 2`` on its metrics port, the REST server (``arcana.wsgi_server``)
with two workers at ``/metrics`` and on its master's port, and a worker killed
and respawned is counted once, its live gauges dropped."""

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


def _get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _start_rest(processes: list[subprocess.Popen[bytes]], tmp_path: Path) -> tuple[int, int, Path]:
    """``python -m arcana.wsgi_server`` with two workers; waits until it answers."""
    port, metrics_port = side_ports(2)
    directory = tmp_path / "metrics"
    _start(
        processes,
        tmp_path,
        [sys.executable, "-m", "arcana.wsgi_server"],
        REST_BIND=f"127.0.0.1:{port}",
        REST_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        REST_METRICS_PORT=str(metrics_port),
    )

    def up() -> bool:
        try:
            return _get(port, "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=30)
    return port, metrics_port, directory


def _until_both_workers_counted(port: int, directory: Path, pids: int = 2) -> int:
    """Concurrent batches until ``pids`` processes have answered some (each
    counts into a file of its own); returns the requests sent."""
    sent = 0
    until = time.monotonic() + 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(_pids_counted(directory)) < pids and time.monotonic() < until:
            assert set(pool.map(lambda _: _get(port, "/healthz")[0], range(16))) == {200}
            sent += 16
    assert len(_pids_counted(directory)) == pids
    return sent


def test_rest_workers_are_summed_at_metrics_and_on_the_master_port(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port, metrics_port, directory = _start_rest(processes, tmp_path)
    before = sample(_get(port, "/metrics")[1], "arcana_http_requests_total", route="healthz")
    sent = _until_both_workers_counted(port, directory)
    status, text = _get(port, "/metrics")
    assert status == 200
    assert sample(text, "arcana_http_requests_total", route="healthz") == before + sent
    # The master's own metrics port (REST_METRICS_PORT) sums the same files.
    master = scrape(metrics_port)
    assert sample(master, "arcana_http_requests_total", route="healthz") == before + sent


def _worker_pids(directory: Path) -> set[int]:
    return {int(pid.removesuffix(".db")) for pid in _pids_counted(directory)}


def test_a_killed_worker_is_respawned_and_its_counts_kept(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port, metrics_port, directory = _start_rest(processes, tmp_path)
    sent = _until_both_workers_counted(port, directory)
    before = sample(scrape(metrics_port), "arcana_http_requests_total", route="healthz")
    assert before >= sent
    victim = min(_worker_pids(directory))
    os.kill(victim, signal.SIGKILL)  # no clean exit: what an OOM kill does
    # (A connection it had taken from the shared queue as it died is reset,
    # as with any server; the test starts sending once it is gone.)
    wait_for(lambda: not Path(f"/proc/{victim}").exists(), timeout=10)
    # The master forks a new worker; it answers beside the survivor.
    sent_after = _until_both_workers_counted(port, directory, pids=3)
    assert processes[0].poll() is None
    # The dead worker's requests stay in the sum.
    text = scrape(metrics_port)
    assert sample(text, "arcana_http_requests_total", route="healthz") == before + sent_after


_COUNT_IN_FLIGHT_AND_DIE = """
import os, sys
from arcana.core import metrics
metrics.enable_multiprocess(sys.argv[1])
metrics.GrpcMeters("grpc").started()  # a call begins, as a gRPC server counts it
os._exit(0)  # and the worker dies inside it: its gauge says 1 forever
"""


def test_a_scrape_drops_the_live_gauges_of_dead_workers(tmp_path: Path) -> None:
    from arcana.core import metrics

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "arcana.settings.test"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run(
        [sys.executable, "-c", _COUNT_IN_FLIGHT_AND_DIE, str(tmp_path)],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )
    assert any(name.startswith("gauge_live") for name in os.listdir(tmp_path))
    metrics.enable_multiprocess(str(tmp_path))
    try:
        text = metrics.exposition()[0].decode()
    finally:
        metrics.disable_multiprocess()
    assert sample(text, "arcana_grpc_in_flight_calls", server="grpc") == 0
    assert not any(name.startswith("gauge_live") for name in os.listdir(tmp_path))
