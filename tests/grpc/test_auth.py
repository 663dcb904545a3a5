"""arcana.v1.AuthService and the auth interceptor over a real channel."""

from typing import Any

import grpc
import pytest

from arcana.grpc.errors import ERROR_CODE_KEY, RETRY_AFTER_KEY, field_errors
from authn.services import access_token_authenticate
from protos.arcana.v1 import auth_pb2, users_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.conftest import expired_token, forged_token, tokens_for
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import auth_for, bearer, login, rpc_error, trailer
from tests.layered import every_mode
from users.models import User

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), every_mode]

STRONG = "a long and unusual passphrase 42"
LOW_RATES = {"login": "2/min", "register": "2/min", "refresh": "2/min"}


def me_error(auth_stub: AuthServiceStub, metadata: object) -> grpc.RpcError:
    return rpc_error(auth_stub.Me, auth_pb2.MeRequest(), metadata=metadata)


# --- Register ---------------------------------------------------------------------------


def test_register(auth_stub: AuthServiceStub) -> None:
    request = auth_pb2.RegisterRequest(name="Reg", email="Reg@Example.com", password=STRONG)
    pair = auth_stub.Register(request)
    assert pair.user.email == "reg@example.com"
    assert list(pair.user.roles) == ["user"]
    assert access_token_authenticate(token=pair.access).user.id == pair.user.id
    me = auth_stub.Me(auth_pb2.MeRequest(), metadata=bearer(pair.access))
    assert me.id == pair.user.id


def test_register_invalid(auth_stub: AuthServiceStub) -> None:
    error = rpc_error(auth_stub.Register, auth_pb2.RegisterRequest(email="bad", password="x"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_errors(error.trailing_metadata())) == {"name", "email", "password"}


def test_register_email_too_long_once_lower_cased(auth_stub: AuthServiceStub) -> None:
    """Found by tests/hardening: INTERNAL on MySQL (the stored form overflowed)."""
    request = auth_pb2.RegisterRequest(
        name="Long", email="İ" * 200 + "@example.com", password=STRONG
    )
    error = rpc_error(auth_stub.Register, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    errors = field_errors(error.trailing_metadata())
    assert set(errors) == {"email"}
    assert "Ensure this field has no more than 254 characters." in errors["email"]


def test_register_password_similar_to_email_is_invalid(auth_stub: AuthServiceStub) -> None:
    # The part of the policy only the service can check (it needs the user).
    request = auth_pb2.RegisterRequest(
        name="Sim", email="veryunusualname@example.com", password="veryunusualname"
    )
    error = rpc_error(auth_stub.Register, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in field_errors(error.trailing_metadata())


def test_register_duplicate_email(auth_stub: AuthServiceStub, user: User) -> None:
    request = auth_pb2.RegisterRequest(name="Dup", email=user.email.upper(), password=STRONG)
    error = rpc_error(auth_stub.Register, request)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert User.objects.filter(email__iexact=user.email).count() == 1


# --- Login -------------------------------------------------------------------------------


def test_login(auth_stub: AuthServiceStub, user: User) -> None:
    pair = login(auth_stub, user)
    assert pair.user.id == str(user.pk)
    assert auth_stub.Me(auth_pb2.MeRequest(), metadata=bearer(pair.access)).email == user.email


@pytest.mark.parametrize("email", ["ursula@example.com", "nobody@example.com"])
def test_login_failures_look_the_same(auth_stub: AuthServiceStub, user: User, email: str) -> None:
    error = rpc_error(auth_stub.Login, auth_pb2.LoginRequest(email=email, password="wrong-pass"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "Invalid email or password."
    assert trailer(error, ERROR_CODE_KEY) == "invalid_credentials"


def test_login_inactive_user(auth_stub: AuthServiceStub) -> None:
    user = User.objects.create_user("gone@example.com", "Gone", DEFAULT_PASSWORD, is_active=False)
    request = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
    assert rpc_error(auth_stub.Login, request).code() == grpc.StatusCode.UNAUTHENTICATED


# --- Refresh and Logout ------------------------------------------------------------------


def test_refresh_rotates(auth_stub: AuthServiceStub, user: User) -> None:
    pair = login(auth_stub, user)
    rotated = auth_stub.Refresh(auth_pb2.RefreshRequest(refresh=pair.refresh))
    assert rotated.refresh != pair.refresh
    assert rotated.user.id == str(user.pk)
    error = rpc_error(auth_stub.Refresh, auth_pb2.RefreshRequest(refresh=pair.refresh))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_refresh_rejects_garbage_and_access_tokens(auth_stub: AuthServiceStub, user: User) -> None:
    for token in ("garbage", tokens_for(user).access):
        error = rpc_error(auth_stub.Refresh, auth_pb2.RefreshRequest(refresh=token))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(auth_stub.Refresh, auth_pb2.RefreshRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_logout_kills_the_refresh_token(auth_stub: AuthServiceStub, user: User) -> None:
    pair = login(auth_stub, user)
    auth_stub.Logout(auth_pb2.LogoutRequest(refresh=pair.refresh), metadata=bearer(pair.access))
    error = rpc_error(auth_stub.Refresh, auth_pb2.RefreshRequest(refresh=pair.refresh))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_logout_needs_auth_and_own_token(
    auth_stub: AuthServiceStub, user: User, other_user: User
) -> None:
    theirs = tokens_for(other_user).refresh
    error = rpc_error(auth_stub.Logout, auth_pb2.LogoutRequest(refresh=theirs))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    request = auth_pb2.LogoutRequest(refresh=theirs)
    error = rpc_error(auth_stub.Logout, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Still alive: a stranger cannot log someone else out.
    assert auth_stub.Refresh(auth_pb2.RefreshRequest(refresh=theirs)).user.id == str(other_user.pk)


# --- Me and token attacks --------------------------------------------------------------------


def test_me(auth_stub: AuthServiceStub, admin_user: User) -> None:
    me = auth_stub.Me(auth_pb2.MeRequest(), metadata=auth_for(admin_user))
    assert (me.id, list(me.roles)) == (str(admin_user.pk), ["admin", "user"])


@pytest.mark.parametrize(
    "attack",
    ["missing", "empty", "basic", "three-parts", "garbage", "forged", "expired", "refresh"],
)
def test_bad_credentials_are_unauthenticated(
    auth_stub: AuthServiceStub, users_stub: UserServiceStub, user: User, attack: str
) -> None:
    header = {
        "missing": None,
        "empty": "",
        "basic": "Basic dXNlcjpwYXNz",
        "three-parts": "Bearer one two",
        "garbage": "Bearer not-a-jwt",
        "forged": f"Bearer {forged_token(user)}",
        "expired": f"Bearer {expired_token(user)}",
        "refresh": f"Bearer {tokens_for(user).refresh}",
    }[attack]
    metadata = None if header is None else (("authorization", header),)
    assert me_error(auth_stub, metadata).code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(users_stub.ListUsers, users_pb2.ListUsersRequest(), metadata=metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_deactivated_user_is_cut_off_at_once(auth_stub: AuthServiceStub, user: User) -> None:
    metadata = auth_for(user)
    auth_stub.Me(auth_pb2.MeRequest(), metadata=metadata)
    user.is_active = False
    user.save()
    assert me_error(auth_stub, metadata).code() == grpc.StatusCode.UNAUTHENTICATED


# --- throttling ---------------------------------------------------------------------------------


def test_login_is_throttled(auth_stub: AuthServiceStub, settings: Any) -> None:
    settings.THROTTLE_RATES = LOW_RATES
    request = auth_pb2.LoginRequest(email="who@example.com", password="whatever-123")
    codes = [rpc_error(auth_stub.Login, request).code() for _ in range(3)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    error = rpc_error(auth_stub.Login, request)
    assert 1 <= int(trailer(error, RETRY_AFTER_KEY) or 0) <= 60


def test_register_is_throttled_and_writes_nothing(
    auth_stub: AuthServiceStub, settings: Any
) -> None:
    settings.THROTTLE_RATES = LOW_RATES
    for index in range(2):
        request = auth_pb2.RegisterRequest(name="N", email=f"n{index}@example.com", password=STRONG)
        auth_stub.Register(request)
    request = auth_pb2.RegisterRequest(name="N", email="n2@example.com", password=STRONG)
    assert rpc_error(auth_stub.Register, request).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not User.objects.filter(email="n2@example.com").exists()


def test_refresh_is_throttled(auth_stub: AuthServiceStub, user: User, settings: Any) -> None:
    settings.THROTTLE_RATES = LOW_RATES
    request = auth_pb2.RefreshRequest(refresh="garbage")
    codes = [rpc_error(auth_stub.Refresh, request).code() for _ in range(3)]
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- whose address the throttle counts (GRPC_NUM_PROXIES, apart from REST's NUM_PROXIES) -------


def _login_from(auth_stub: AuthServiceStub, forwarded_for: str) -> grpc.StatusCode:
    request = auth_pb2.LoginRequest(email="who@example.com", password="whatever-123")
    metadata = (("x-forwarded-for", forwarded_for),)
    code: grpc.StatusCode = rpc_error(auth_stub.Login, request, metadata=metadata).code()
    return code


def test_spoofed_forwarded_for_does_not_escape_the_login_throttle(
    auth_stub: AuthServiceStub, settings: Any
) -> None:
    """REST behind a proxy (NUM_PROXIES=1) must not make gRPC, exposed directly,
    trust a client's own x-forwarded-for: it would get a fresh bucket per call."""
    settings.THROTTLE_RATES = LOW_RATES
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.GRPC_NUM_PROXIES = 0
    codes = [_login_from(auth_stub, f"203.0.113.{n}") for n in range(3)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]


def test_forwarded_for_is_honoured_behind_trusted_grpc_proxies(
    auth_stub: AuthServiceStub, settings: Any
) -> None:
    settings.THROTTLE_RATES = LOW_RATES
    settings.GRPC_NUM_PROXIES = 1
    # Three clients behind the proxy: three buckets.
    assert [_login_from(auth_stub, f"203.0.113.{n}") for n in range(3)] == [
        grpc.StatusCode.UNAUTHENTICATED
    ] * 3
    # One client, whatever it puts before the proxy's entry: one bucket.
    codes = [_login_from(auth_stub, f"10.9.9.{n}, 198.51.100.7") for n in range(3)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]


# --- ChangePassword ---------------------------------------------------------------------------


def change_password(current: str, new: str = STRONG) -> auth_pb2.ChangePasswordRequest:
    return auth_pb2.ChangePasswordRequest(current_password=current, new_password=new)


def test_change_password_ends_the_other_sessions_only(
    auth_stub: AuthServiceStub, user: User
) -> None:
    mine, other = login(auth_stub, user), login(auth_stub, user)
    auth_stub.ChangePassword(change_password(DEFAULT_PASSWORD), metadata=bearer(mine.access))

    error = rpc_error(auth_stub.Refresh, auth_pb2.RefreshRequest(refresh=other.refresh))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert auth_stub.Refresh(auth_pb2.RefreshRequest(refresh=mine.refresh)).user.id == str(user.pk)
    old = auth_pb2.LoginRequest(email=user.email, password=DEFAULT_PASSWORD)
    assert rpc_error(auth_stub.Login, old).code() == grpc.StatusCode.UNAUTHENTICATED
    assert auth_stub.Login(auth_pb2.LoginRequest(email=user.email, password=STRONG)).access


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("not the password at all", STRONG, "current_password"),
        (DEFAULT_PASSWORD, "short", "new_password"),
        (DEFAULT_PASSWORD, DEFAULT_PASSWORD, "new_password"),
        ("", STRONG, "current_password"),
    ],
)
def test_change_password_refusals_are_invalid_argument(
    auth_stub: AuthServiceStub, user: User, current: str, new: str, field: str
) -> None:
    request = change_password(current, new)
    error = rpc_error(auth_stub.ChangePassword, request, metadata=auth_for(user))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_errors(error.trailing_metadata())
    assert rpc_error(auth_stub.ChangePassword, request).code() == grpc.StatusCode.UNAUTHENTICATED
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_change_password_is_throttled(
    auth_stub: AuthServiceStub, user: User, settings: Any
) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "password": "2/min"}
    metadata = auth_for(user)
    codes = [
        rpc_error(auth_stub.ChangePassword, change_password(f"guess {i}"), metadata=metadata).code()
        for i in range(3)
    ]
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
