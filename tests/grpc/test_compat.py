"""One test per fix in ``arcana.core.grpc_compat``.

Each ``test_upstream_*`` asserts the upstream bug is still there: when one
starts failing after an upgrade, the bug is fixed upstream and the matching
workaround (and both tests) can go. Each ``test_fix_*`` fails if the
workaround is removed. Helpers only these tests need (a patched upstream
``FakeServer``, the fields without presence) live here, not in the compat module.
"""

import logging
import os
import subprocess
import sys
from concurrent import futures
from typing import Any

import grpc
import pytest
from django.conf import settings
from django.core.management import call_command, get_commands
from django.test import override_settings
from django_grpc_framework import test as upstream_test
from django_grpc_framework.management.commands import grpcrunserver as upstream_command
from django_grpc_framework.protobuf import json_format as upstream_json_format
from django_grpc_framework.settings import grpc_settings
from django_grpc_framework.signals import grpc_request_finished, grpc_request_started
from google.protobuf.message import Message

from arcana.core import grpc_compat as compat
from arcana.grpc.interceptors import AuthInterceptor, DecodeInterceptor, ErrorInterceptor
from arcana.grpc.server import grpc_handlers
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2
from tests.grpc.conftest import rpc_error

# --- 1. grpcrunserver ----------------------------------------------------------------


def test_upstream_grpcrunserver_cannot_even_be_instantiated() -> None:
    with pytest.raises(TypeError, match="requires_system_checks must be a list or tuple"):
        upstream_command.Command()


def test_fix_grpcrunserver_is_the_projects_own() -> None:
    assert get_commands()["grpcrunserver"] == compat.COMMAND_APP
    assert compat.check_command_override(None) == []


def test_fix_check_catches_reordered_installed_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "get_commands", lambda: {"grpcrunserver": "django_grpc_framework"})
    (error,) = compat.check_command_override(None)
    assert error.id == "arcana_grpc.E001"


def test_fix_check_is_registered() -> None:
    call_command("check", tags=["compatibility"])  # raises SystemCheckError on E001


# --- 2. message_to_dict -----------------------------------------------------------------


def test_upstream_message_to_dict_breaks_on_protobuf_5_plus() -> None:
    with pytest.raises(TypeError, match="including_default_value_fields"):
        upstream_json_format.message_to_dict(users_pb2.GetUserRequest(id="x"))


def test_fix_message_to_dict_keeps_field_names_and_plain_defaults() -> None:
    data = compat.message_to_dict(auth_pb2.RegisterRequest(name="Ann", email="a@example.com"))
    assert data == {"name": "Ann", "email": "a@example.com", "password": ""}


# --- 3. FakeServer -----------------------------------------------------------------------


def test_upstream_fake_server_cannot_take_generated_stubs() -> None:
    with pytest.raises(AttributeError, match="add_registered_method_handlers"):
        grpc_handlers(upstream_test.FakeServer())


class FakeServer(upstream_test.FakeServer):
    """Upstream's in-memory server, able to take today's generated stubs."""

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, Any]
    ) -> None:
        for method, handler in method_handlers.items():
            self.rpc_method_handlers[f"/{service_name}/{method}"] = handler


class Channel(upstream_test.Channel):
    """Upstream's test channel on :class:`FakeServer` (no interceptors, no wire:
    the project's tests use a real server on port 0 instead)."""

    def __init__(self) -> None:
        server = FakeServer()
        grpc_settings.ROOT_HANDLERS_HOOK(server)
        self.server = server


def test_fix_fake_server_takes_generated_stubs() -> None:
    server = FakeServer()
    grpc_handlers(server)
    handler = server._find_method_handler("/arcana.v1.UserService/GetUser")
    assert handler.unary_unary is not None
    with override_settings(
        GRPC_FRAMEWORK={"ROOT_HANDLERS_HOOK": "arcana.grpc.server.grpc_handlers"}
    ):
        channel = Channel()
    assert "/arcana.v1.AuthService/Login" in channel.server.rpc_method_handlers


# --- 4. SERVER_INTERCEPTORS ---------------------------------------------------------------


def test_upstream_server_interceptors_are_classes_and_break_every_call() -> None:
    assert [
        ErrorInterceptor,
        AuthInterceptor,
        DecodeInterceptor,
    ] == grpc_settings.SERVER_INTERCEPTORS
    # What upstream's own grpcrunserver would build with them:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1),
        interceptors=grpc_settings.SERVER_INTERCEPTORS,
    )
    grpc_handlers(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            error = rpc_error(stub.Me, auth_pb2.MeRequest())
        assert error.code() == grpc.StatusCode.UNKNOWN
    finally:
        server.stop(0).wait()


def test_fix_server_interceptors_are_instances_in_order() -> None:
    interceptors = compat.server_interceptors()
    assert [type(item) for item in interceptors] == [
        ErrorInterceptor,
        AuthInterceptor,
        DecodeInterceptor,
    ]
    assert all(isinstance(item, grpc.ServerInterceptor) for item in interceptors)


# --- 5. the grpc logger -------------------------------------------------------------------


LOG_SCRIPT = """
import logging, grpc
{fix}
logging.getLogger("grpc._server").error("exception calling application")
"""


def _python(script: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: this process's LOGGING, signals and pytest are set up already.
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "arcana.settings.test"},
    )


def _stderr_of(script: str) -> str:
    return _python(script).stderr


def test_upstream_grpc_logger_swallows_server_errors() -> None:
    assert "exception calling application" not in _stderr_of(LOG_SCRIPT.format(fix=""))


def test_fix_grpc_logging_shows_server_errors() -> None:
    fix = "from arcana.core import grpc_compat as compat; compat.ensure_grpc_logging()"
    assert "exception calling application" in _stderr_of(LOG_SCRIPT.format(fix=fix))


def test_fix_grpc_logging_respects_configured_logging() -> None:
    before = list(logging.getLogger("grpc").handlers)
    assert compat.grpc_logging_reaches_a_handler()  # settings.LOGGING configures it
    compat.ensure_grpc_logging()
    assert logging.getLogger("grpc").handlers == before


# --- 6. proto3 scalar defaults --------------------------------------------------------------


def fields_without_presence(message_class: type[Message]) -> list[str]:
    """Names of singular fields whose "unset" cannot be told from the default."""
    return [
        field.name
        for field in message_class.DESCRIPTOR.fields
        # FieldDescriptor.label is deprecated in protobuf 7; is_repeated replaces it.
        if not field.has_presence and not field.is_repeated
    ]


def test_upstream_proto3_scalars_cannot_say_unset() -> None:
    # A plain proto3 string reads as "" when unset: as an update it would blank the field.
    assert "name" in fields_without_presence(auth_pb2.RegisterRequest)
    assert compat.message_to_dict(auth_pb2.RegisterRequest())["name"] == ""


def test_fix_partial_update_fields_have_presence() -> None:
    assert fields_without_presence(users_pb2.UpdateUserRequest) == ["id"]
    assert fields_without_presence(users_pb2.ListUsersRequest) == []
    data = compat.message_to_dict(users_pb2.UpdateUserRequest(id="x", is_active=False))
    assert data == {"id": "x", "is_active": False}


# --- 7. the servicer's own request signals ----------------------------------------------

SIGNALS_SCRIPT = """
import django
django.setup()
from django_grpc_framework.signals import grpc_request_finished, grpc_request_started
{fix}
print(len(grpc_request_started.receivers), len(grpc_request_finished.receivers))
"""


def _receivers(fix: str) -> list[str]:
    return _python(SIGNALS_SCRIPT.format(fix=fix)).stdout.split()


def test_upstream_servicers_repeat_djangos_request_boundaries() -> None:
    assert _receivers("") == ["2", "1"]  # reset_queries, close_old_connections; and again


def test_fix_one_set_of_request_boundaries_per_call() -> None:
    fix = "from arcana.core import grpc_compat as compat; compat.drop_duplicate_request_signals()"
    assert _receivers(fix) == ["0", "0"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fix_a_call_still_has_djangos_request_boundaries(users_stub: Any, user: Any) -> None:
    from django.core.signals import request_finished, request_started

    from tests.grpc.conftest import auth_for

    seen: list[str] = []

    def started(**kwargs: Any) -> None:
        seen.append("started")

    def finished(**kwargs: Any) -> None:
        seen.append("finished")

    metadata = auth_for(user)
    request_started.connect(started, weak=False)
    request_finished.connect(finished, weak=False)
    try:
        users_stub.GetUser(users_pb2.GetUserRequest(id=str(user.pk)), metadata=metadata)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert seen == ["started", "finished"]
    assert not grpc_request_started.receivers  # the server dropped upstream's
    assert not grpc_request_finished.receivers
