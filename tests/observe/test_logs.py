"""One JSON line per request, with the fields operators need and no secret."""

import io
import json
import json.encoder
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
import structlog
from django.test import override_settings
from rest_framework.test import APIClient

from arcana.grpc.server import ArcanaServer
from arcana.observe.logs import (
    REQUEST_LOGGER,
    LineWriter,
    formatter,
    request_logger,
    use_request_logger,
)
from protos.arcana.v1 import auth_pb2, users_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.commands import run_manage
from tests.conftest import client_for
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import auth_for, live_db
from tests.secret_scan import find_secret
from users.models import User

FIELDS = {"event", "request_id", "trace_id", "user_id", "status", "duration_ms", "timestamp"}


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The request log as production writes it (LOG_FORMAT=json), into memory."""
    stream = io.StringIO()
    before = use_request_logger(request_logger("json", stream))
    written: list[str] = []
    _streams[id(written)] = stream
    yield written
    use_request_logger(before)
    del _streams[id(written)]


_streams: dict[int, io.StringIO] = {}


def read(handler_lines: list[str]) -> list[dict[str, Any]]:
    text = _streams[id(handler_lines)].getvalue()
    for line in text.splitlines():
        assert find_secret(line) is None, line
        handler_lines.append(line)
    return [json.loads(line) for line in text.splitlines()]  # every line is one JSON object


@pytest.mark.django_db
def test_a_rest_request_is_one_json_line(lines: list[str], user: User) -> None:
    response = client_for(user).get(f"/api/v1/users/{user.id}", HTTP_X_REQUEST_ID="req-42.a")
    assert response.status_code == 200
    (line,) = read(lines)
    assert line.keys() >= FIELDS
    assert line["event"] == "request"
    assert line["transport"] == "http"
    assert line["request_id"] == "req-42.a" == response["X-Request-ID"]
    assert line["user_id"] == str(user.id)
    assert line["route"].startswith("api/v1/")
    assert (line["method"], line["status"]) == ("GET", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] > 0
    assert line["trace_id"] is None  # tracing is off
    assert user.email not in lines[0]


@pytest.mark.django_db
def test_logins_log_no_secret(lines: list[str], user: User) -> None:
    client = APIClient()
    good = client.post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert good.status_code == 200
    bad = client.post(
        "/api/v1/auth/login", {"email": user.email, "password": "wrong password!"}, format="json"
    )
    assert bad.status_code == 401
    records = read(lines)  # find_secret looked at every line
    assert [record["status"] for record in records] == [200, 401]
    text = "\n".join(lines)
    assert good.json()["access"] not in text
    assert good.json()["refresh"] not in text
    assert user.email not in text
    assert user.password not in text
    assert all(record["user_id"] is None for record in records)  # nobody was signed in


@pytest.mark.django_db
def test_request_log_off_writes_nothing(lines: list[str], user: User) -> None:
    with override_settings(REQUEST_LOG=False):
        assert client_for(user).get(f"/api/v1/users/{user.id}").status_code == 200
    assert read(lines) == []


@live_db
def test_a_grpc_call_is_one_json_line(
    lines: list[str], grpc_server: ArcanaServer, user: User
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        UserServiceStub(channel).GetUser(
            users_pb2.GetUserRequest(id=str(user.id)),
            metadata=(*auth_for(user), ("x-request-id", "grpc-req-7")),
        )
        with pytest.raises(grpc.RpcError):
            AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(email=user.email, password="wrong password!")
            )
    first, second = read(lines)
    assert first.keys() >= FIELDS
    assert first["transport"] == "grpc"
    assert (first["rpc"], first["status"]) == ("/arcana.v1.UserService/GetUser", "OK")
    assert first["request_id"] == "grpc-req-7"
    assert first["user_id"] == str(user.id)
    assert (second["rpc"], second["status"]) == ("/arcana.v1.AuthService/Login", "UNAUTHENTICATED")
    assert second["user_id"] is None
    assert user.email not in "\n".join(lines)


@pytest.mark.parametrize("accelerated", [True, False], ids=["C encoder", "pure Python"])
def test_the_json_line_is_what_structlog_would_render(
    accelerated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request line skips structlog's chain (arcana.observe.logs.JsonLines),
    not its output: the same keys in the same order, the same values and
    escaping, and structlog's UTC timestamp format."""
    if not accelerated:
        monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    fields: dict[str, Any] = {
        "transport": "grpc",
        "request_id": "r-1",
        "trace_id": None,
        "user_id": 'caf\u00e9 "quoted"',
        "status": "OK",
        "duration_ms": 0.125,
        "count": 3,
        "odd": object,  # no JSON type: its repr, as structlog's fallback gives
    }
    ours, theirs = io.StringIO(), io.StringIO()
    request_logger("json", ours).info("request", **fields)
    structlog.wrap_logger(
        LineWriter(theirs),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    ).bind(logger=REQUEST_LOGGER).info("request", **fields)
    (line,), (expected,) = ours.getvalue().splitlines(), theirs.getvalue().splitlines()
    stamp = re.compile(r'"timestamp": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z"')
    found, wanted = stamp.search(line), stamp.search(expected)
    assert found is not None, line
    assert wanted is not None, expected
    assert stamp.sub("", line) == stamp.sub("", expected)
    written, stamped = (datetime.fromisoformat(m.group(1)) for m in (found, wanted))
    assert abs(written - stamped) < timedelta(seconds=1)


def test_console_lines_are_for_people() -> None:
    options = formatter("console")
    rendered = options.pop("()")(**options).format(
        logging.LogRecord("arcana.x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    )
    assert "hello there" in rendered
    with pytest.raises(json.JSONDecodeError):
        json.loads(rendered)


def test_an_unknown_log_format_stops_the_process() -> None:
    result = run_manage("check", env={"LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert "LOG_FORMAT must be one of json, console" in result.stderr
