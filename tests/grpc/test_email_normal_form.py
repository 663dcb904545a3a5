"""The email normal form over gRPC: lookalike spellings collide, invisible
characters and undecodable domains are INVALID_ARGUMENT, and a login with any
of them is UNAUTHENTICATED, never INTERNAL."""

import grpc
import pytest

from arcana.grpc.errors import ERROR_CODE_KEY, field_errors
from protos.arcana.v1 import auth_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from tests.emails import INVISIBLE, LOOKALIKES
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import rpc_error, trailer
from users.models import INVISIBLE_CHARACTERS_MESSAGE, User

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

STRONG = "a long and unusual passphrase 42"


def register(auth_stub: AuthServiceStub, email: str) -> auth_pb2.TokenPair:
    request = auth_pb2.RegisterRequest(name="Homo", email=email, password=STRONG)
    pair: auth_pb2.TokenPair = auth_stub.Register(request, timeout=10)
    return pair


def register_error(auth_stub: AuthServiceStub, email: str) -> grpc.RpcError:
    request = auth_pb2.RegisterRequest(name="Homo", email=email, password=STRONG)
    return rpc_error(auth_stub.Register, request)


@pytest.mark.parametrize("email", LOOKALIKES)
def test_register_lookalike_of_a_taken_address(auth_stub: AuthServiceStub, email: str) -> None:
    assert register(auth_stub, "homo@example.com").user.email == "homo@example.com"
    error = register_error(auth_stub, email)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert trailer(error, ERROR_CODE_KEY) == "email_taken"
    assert User.objects.count() == 1


@pytest.mark.parametrize("email", INVISIBLE)
def test_register_with_invisible_characters(auth_stub: AuthServiceStub, email: str) -> None:
    error = register_error(auth_stub, email)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert INVISIBLE_CHARACTERS_MESSAGE in field_errors(error.trailing_metadata())["email"]
    assert not User.objects.exists()


def test_register_with_an_undecodable_domain(auth_stub: AuthServiceStub) -> None:
    error = register_error(auth_stub, "homo@xn--zz.com")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error.trailing_metadata()) == {"email": ["Enter a valid email address."]}


def test_register_stores_an_internationalised_domain_as_idna(auth_stub: AuthServiceStub) -> None:
    assert register(auth_stub, "Ann@Bücher.de").user.email == "ann@xn--bcher-kva.de"


@pytest.mark.parametrize("email", [*INVISIBLE, "ursula@xn--zz.com", "ursula@" + "ä" * 60 + ".io"])
def test_login_with_an_unusable_address(auth_stub: AuthServiceStub, user: User, email: str) -> None:
    request = auth_pb2.LoginRequest(email=email, password=DEFAULT_PASSWORD)
    error = rpc_error(auth_stub.Login, request)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailer(error, ERROR_CODE_KEY) == "invalid_credentials"
