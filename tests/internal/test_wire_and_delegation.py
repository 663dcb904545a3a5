"""The JSON form of records and errors, and which tier binds what."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import authn
import users
from arcana.core import delegation
from arcana.core.exceptions import ApplicationError, Conflict, NotFound, Unauthenticated
from arcana.core.internal import RemoteBoundary
from arcana.core.wire import Codec, Failure, WireError, error_from, failure_of, to_data
from authn.errors import CredentialsMissing, InvalidCredentials
from authn.interfaces import AuthRepositoryInterface, AuthServiceInterface
from tests.commands import refusal, run_manage
from tests.internal.conftest import deploy_as
from tests.jwtkeys import tier_keys
from users import repository as users_repository
from users.errors import EmailTaken, LastAdmin
from users.interfaces import UserRepositoryInterface, UserServiceInterface
from users.records import UserCredentials, UserPage, UserRecord

WHEN = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
RECORD = UserRecord(
    id="u1",
    name="Ada",
    email="ada@example.com",
    roles=("admin", "user"),
    sync_status="synced",
    is_active=True,
    created_at=WHEN,
    updated_at=WHEN,
    is_superuser=True,
)


def test_records_round_trip_with_their_types() -> None:
    codec = Codec(UserRepositoryInterface)
    page = UserPage(users=[RECORD], page=0, size=10, total=1)
    assert codec.decode_result("user_list", codec.encode_result("user_list", page)) == page
    credentials = UserCredentials(user=RECORD, password_hash="pbkdf2$x")
    back = codec.decode_result(
        "user_credentials", codec.encode_result("user_credentials", credentials)
    )
    assert back == credentials
    assert back.user.roles == ("admin", "user")
    assert back.user.created_at.utcoffset() == timedelta(hours=2)
    assert codec.decode_result("user_credentials", b"null") is None


@pytest.mark.parametrize(
    ("interface", "method", "value"),
    [
        (UserRepositoryInterface, "user_get", RECORD),
        (UserRepositoryInterface, "user_list", UserPage(users=[RECORD], page=0, size=10, total=1)),
        # A tuple where the hint says list: encoded as the same JSON array.
        (
            UserRepositoryInterface,
            "user_list",
            UserPage(users=(RECORD,), page=0, size=1, total=1),  # type: ignore[arg-type]
        ),
        (UserRepositoryInterface, "user_credentials", None),
        (
            UserRepositoryInterface,
            "user_credentials",
            UserCredentials(user=RECORD, password_hash="pbkdf2$x"),
        ),
        # Not the hinted type: the compiled encoder falls back to to_data's rules.
        (UserRepositoryInterface, "user_get", {"id": "u1", "when": WHEN}),
    ],
)
def test_compiled_encoders_give_what_to_data_gives(
    interface: type, method: str, value: Any
) -> None:
    codec = Codec(interface)
    assert (
        codec.encode_result(method, value)
        == json.dumps(to_data(value), separators=(",", ":")).encode()
    )


def test_compiled_argument_encoders_give_what_to_data_gives() -> None:
    codec = Codec(UserRepositoryInterface)
    arguments = {"user_id": "u1", "changes": {"name": "B", "is_active": False}, "roles": ("user",)}
    assert (
        codec.encode_arguments("user_update_fields", arguments)
        == json.dumps(to_data(arguments), separators=(",", ":")).encode()
    )
    naive = dataclasses.replace(RECORD, created_at=WHEN.replace(tzinfo=None))
    with pytest.raises(WireError, match="offset"):
        codec.encode_result("user_get", naive)
    with pytest.raises(WireError, match="cannot cross"):
        codec.encode_result("user_get", object())


def test_arguments_are_decoded_by_the_protocols_hints() -> None:
    codec = Codec(UserRepositoryInterface)
    data = codec.encode_arguments(
        "user_update_fields",
        {"user_id": "u1", "changes": {"name": "B", "is_active": False}, "roles": ("user",)},
    )
    assert codec.decode_arguments("user_update_fields", data) == {
        "user_id": "u1",
        "changes": {"name": "B", "is_active": False},
        "roles": ("user",),
    }
    ids = codec.encode_arguments("users_update_many", {"user_ids": (i for i in ["a", "b"])})
    assert codec.decode_arguments("users_update_many", ids) == {"user_ids": ("a", "b")}
    auth = Codec(AuthRepositoryInterface)
    args = {
        "jti": "j",
        "user_id": "u",
        "token": "t",
        "created_at": WHEN,
        "expires_at": WHEN.astimezone(UTC),
    }
    assert (
        auth.decode_arguments(
            "refresh_token_record", auth.encode_arguments("refresh_token_record", args)
        )
        == args
    )


@pytest.mark.parametrize(
    ("method", "payload", "why"),
    [
        ("user_update_fields", b'{"user_id":"u","changes":{"password":"x"}}', "no key"),
        ("user_update_fields", b'{"user_id":"u","changes":{"is_active":"yes"}}', "true or false"),
        ("user_get", b'{"user_id":1}', "a string"),
        ("user_get", b"{}", "needs"),
        ("user_get", b"[]", "an object"),
        ("user_get", b"not json", "not JSON"),
        ("user_list", b'{"page":true,"size":1,"sync_status":null,"search":null}', "integer"),
    ],
)
def test_malformed_arguments_are_refused(method: str, payload: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        Codec(UserRepositoryInterface).decode_arguments(method, payload)


def test_naive_datetimes_are_refused_both_ways() -> None:
    auth = Codec(AuthRepositoryInterface)
    with pytest.raises(WireError):
        auth.encode_arguments("refresh_token_family_revoke", {"family": datetime(2026, 1, 1)})
    naive = b'{"jti":"j","user_id":"u","token":"t","created_at":"2026-01-01T00:00:00",'
    naive += b'"expires_at":"2026-01-01T00:00:00+00:00"}'
    with pytest.raises(WireError, match="offset"):
        auth.decode_arguments("refresh_token_record", naive)


def test_an_unknown_type_is_refused_when_the_codec_is_built() -> None:
    class Odd:
        def odd(self, *, value: set[str]) -> None: ...

    with pytest.raises(TypeError, match="cannot cross"):
        Codec(Odd)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (EmailTaken(), EmailTaken),
        (LastAdmin(), LastAdmin),
        (InvalidCredentials(), InvalidCredentials),
        # Two classes declare "not_authenticated": the core one stands for both.
        (CredentialsMissing(), Unauthenticated),
        (NotFound(), NotFound),
    ],
)
def test_errors_come_back_by_code(error: ApplicationError, expected: type) -> None:
    again = error_from(failure_of(error))
    assert type(again) is expected
    assert (again.code, again.kind, again.message) == (error.code, error.kind, error.message)


def test_an_unknown_code_falls_back_to_its_kind() -> None:
    assert type(error_from(Failure(kind="conflict", code="brand_new", message="m"))) is Conflict
    unknown = error_from(Failure(kind="weird", code="weird", message="m"))
    assert type(unknown) is ApplicationError
    assert unknown.message == "m"


def test_the_service_tier_binds_remote_repositories_and_local_services(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    deploy_as(
        settings,
        "service",
        repository_targets=("10.0.0.1:7000", "10.0.0.2:7000"),
        internal_deadline=0.5,
    )
    for app in (users, authn):
        monkeypatch.delattr(app, "service")
        monkeypatch.delattr(app, "repo")
        app.bind()
        assert "repo" not in vars(app)  # a command (migrate, check) needs no peer
        delegation.connect()  # what a serving process does at start
        assert isinstance(vars(app)["repo"], RemoteBoundary)
        assert vars(app)["service"].__name__ == f"{app.__name__}.services"
        vars(app)["repo"].close()
    assert users.repo.boundary == "users.repo"  # type: ignore[attr-defined]
    assert users.repo._reads == {  # type: ignore[attr-defined]
        "user_get",
        "user_credentials",
        "user_credentials_of",
        "user_password_hash",
        "user_list",
    }
    assert authn.repo._reads == {"refresh_token_revoked", "sessions_live"}  # type: ignore[attr-defined]


def test_the_repository_tier_binds_local_and_serves_the_repositories(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.ARCANA_DEPLOYMENT = dataclasses.replace(
        settings.ARCANA_DEPLOYMENT, mode="layered", tier="repository"
    )
    monkeypatch.delattr(users, "repo")
    assert users.repo is users_repository
    served = delegation.repository_boundaries()
    assert set(served) == {"users.repo", "authn.repo"}
    assert served["users.repo"] == (UserRepositoryInterface, users_repository)
    assert served["authn.repo"][0] is AuthRepositoryInterface


def test_the_controller_tier_calls_the_services_across_the_hop(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    deploy_as(settings, "controller", service_targets=("10.0.0.1:7000",))
    for app in (users, authn):
        monkeypatch.delattr(app, "service")
        service = app.service
        assert isinstance(service, RemoteBoundary)
        assert (service.boundary, service.home) == (f"{app.__name__}.service", "service")
        service.close()
    # Only what changes nothing may be tried twice.
    assert users.service._reads == {  # type: ignore[attr-defined]
        "user_get",
        "user_list",
        "user_record",
        "password_check",
        "user_password_matches",
    }
    assert authn.service._reads == {"sessions_list"}  # type: ignore[attr-defined]
    served = delegation.service_boundaries()
    assert set(served) == {"users.service", "authn.service"}
    assert served["users.service"][0] is UserServiceInterface
    assert served["authn.service"][0] is AuthServiceInterface


def test_a_service_tier_without_internal_tls_refuses_to_start() -> None:
    env = {
        "ARCANA_MODE": "layered",
        "ARCANA_TIER": "service",
        "ARCANA_REPOSITORY_ADDR": "repository:50053",
        **tier_keys("service"),
    }
    # Commands that call no peer run without its certificate; a server does not start.
    assert run_manage("check", env=env).returncode == 0
    assert refusal(run_manage("tierserver", "127.0.0.1:0", env=env)) == (
        "internal calls need mutual TLS (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA) "
        "or ARCANA_INTERNAL_INSECURE=true"
    )
    half = {**env, "ARCANA_INTERNAL_TLS_CERT": "/etc/arcana/tier.pem"}
    assert refusal(run_manage("tierserver", "127.0.0.1:0", env=half)) == (
        "ARCANA_INTERNAL_TLS_KEY must be set with the other internal TLS settings"
    )
