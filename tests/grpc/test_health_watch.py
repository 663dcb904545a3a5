"""gRPC health follows the database: NOT_SERVING while it is unreachable."""

import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from arcana import health as arcana_health
from arcana.grpc.server import ArcanaServer
from tests.grpc.conftest import live_db, start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def watched_server() -> Iterator[ArcanaServer]:
    server = start_server(health_interval=0.05)
    yield server
    server.stop(grace=0).wait()


def _status(port: int, service: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def _wait_for(port: int, wanted: int, service: str = "") -> int:
    deadline = time.monotonic() + 5
    status = _status(port, service)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        status = _status(port, service)
    return status


@live_db
def test_health_tracks_database(
    watched_server: ArcanaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _status(watched_server.port) == SERVING
    database_ready = arcana_health.database_ready
    monkeypatch.setattr("arcana.health.database_ready", lambda: False)
    assert _wait_for(watched_server.port, NOT_SERVING) == NOT_SERVING
    assert _wait_for(watched_server.port, NOT_SERVING, "arcana.v1.UserService") == NOT_SERVING
    monkeypatch.setattr("arcana.health.database_ready", database_ready)
    assert _wait_for(watched_server.port, SERVING) == SERVING
