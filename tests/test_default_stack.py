"""The no-configuration default, as ``make run`` starts it: runserver and
grpcrunserver, two processes, SQLite, no Redis. They must share what the
contract says acts at once or counts everywhere: a deactivation or role change
made over REST is seen by gRPC at once, and failed logins and the login
throttle count across both protocols.
"""

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc
from tests.support.servers import ROOT, Server, free_port, grpc_serving, http_ok

PASSWORD = "amber falcon orchard 7731"
ADMIN_EMAIL = "root@example.com"


def _env(tmp: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "THROTTLE_", "LOGIN_", "CACHE_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "arcana.settings.local",
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "CACHE_DIR": str(tmp / "cache"),
            "DJANGO_SECRET_KEY": "k" + os.urandom(24).hex(),
            "JWT_SIGNING_KEY": "j" + os.urandom(24).hex(),
            "DJANGO_SUPERUSER_EMAIL": ADMIN_EMAIL,
            "DJANGO_SUPERUSER_NAME": "Root",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        }
    )
    return env


@pytest.fixture
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    import subprocess

    tmp = tmp_path_factory.mktemp("default-stack")
    env = _env(tmp)
    python = str(ROOT / ".venv" / "bin" / "python")
    for argv in (["migrate", "--noinput"], ["createsuperuser", "--noinput"]):
        subprocess.run(
            [python, "manage.py", *argv], cwd=ROOT, env=env, check=True, capture_output=True
        )
    port, grpc_port = free_port(), free_port()
    server = Server(
        "make-run",
        ["bash", "scripts/run.sh"],
        {**env, "PORT": str(port), "GRPC_PORT": str(grpc_port)},
        tmp / "run.log",
    )
    server.start()
    try:
        server.wait_until(http_ok(port, "/healthz"))
        server.wait_until(grpc_serving(f"127.0.0.1:{grpc_port}"))
        yield port, f"127.0.0.1:{grpc_port}"
    finally:
        server.stop()


def _rest(port: int, method: str, path: str, body: Any = None, token: str = "") -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, f"/api/v1{path}", json.dumps(body) if body else None, headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def test_rest_changes_act_at_once_on_grpc(default_stack: tuple[int, str]) -> None:
    port, address = default_stack
    status, registered = _rest(
        port,
        "POST",
        "/auth/register",
        {"name": "Vera", "email": "vera@example.com", "password": PASSWORD},
    )
    assert status == 201
    token, user_id = registered["access"], registered["user"]["id"]
    _, admin = _rest(port, "POST", "/auth/login", {"email": ADMIN_EMAIL, "password": PASSWORD})
    with grpc.insecure_channel(address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        me = auth.Me(auth_pb2.MeRequest(), metadata=metadata, timeout=10)
        assert list(me.roles) == ["user"]  # the gRPC process has now read Vera

        status, _ = _rest(
            port, "PATCH", f"/users/{user_id}", {"roles": ["user", "admin"]}, admin["access"]
        )
        assert status == 200
        me = auth.Me(auth_pb2.MeRequest(), metadata=metadata, timeout=10)
        assert sorted(me.roles) == ["admin", "user"]

        status, _ = _rest(port, "PATCH", f"/users/{user_id}", {"is_active": False}, admin["access"])
        assert status == 200
        with pytest.raises(grpc.RpcError) as caught:
            auth.Me(auth_pb2.MeRequest(), metadata=metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_failed_logins_and_the_throttle_count_across_protocols(
    default_stack: tuple[int, str],
) -> None:
    port, address = default_stack
    wrong = {"email": ADMIN_EMAIL, "password": "not the password"}
    # A fresh stack: no login from this address yet. Five failures lock
    # the admin's account for this address (LOGIN_LOCKOUT_FAILURES) ...
    assert [_rest(port, "POST", "/auth/login", wrong)[0] for _ in range(5)] == [401] * 5
    with grpc.insecure_channel(address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        right = auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=PASSWORD)
        with pytest.raises(grpc.RpcError) as caught:
            auth.Login(right, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "failed attempts" in (caught.value.details() or "")
        # ... and the per-address login throttle (10/min) counts REST and gRPC
        # calls together: six so far, so four more pass it and the eleventh is
        # refused, on either protocol.
        unknown = auth_pb2.LoginRequest(email="nobody@example.com", password=PASSWORD)
        codes = []
        for _ in range(4):
            with pytest.raises(grpc.RpcError) as failed:
                auth.Login(unknown, timeout=10)
            codes.append(failed.value.code())
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4
    status, body = _rest(port, "POST", "/auth/login", wrong)
    assert status == 429
    assert body["code"] == "throttled"
