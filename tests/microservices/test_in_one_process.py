"""The microservices harness itself (tests/layered.py): where each request
enters, what crosses between the services and from which, and that the data
guard refuses another service's models and fails the test.

The API suites run as a microservices deployment through ``every_mode``;
these tests check that their ``[microservices]`` runs mean what they say."""

from contextlib import suppress
from typing import Any

import pytest
from rest_framework.test import APIClient

import authn
import users
from arcana.core.delegation import NotReachable
from arcana.core.internal import RemoteBoundary
from arcana.db.ownership import ForeignDataUse
from authn import services as auth_services
from authn.models import RefreshToken
from protos.arcana.v1 import auth_pb2, users_pb2
from protos.arcana.v1.auth_pb2_grpc import AuthServiceStub
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.conftest import client_for
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import auth_for
from tests.internal.test_layered import bound
from tests.layered import AUTH, MICROSERVICES_LAYOUT, USERS, Deployed, current_service
from users import repository, services
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

STRONG = "a long and unusual passphrase 42"


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/auth/login", AUTH),
        ("/api/v1/auth/me", AUTH),
        ("/.well-known/jwks.json", AUTH),
        ("/api/v1/users", USERS),
        ("/api/v1/users/x", USERS),
        ("/api/v1/authx", USERS),
        ("/api/schema", USERS),
        ("/admin/", USERS),
    ],
)
def test_a_rest_request_enters_the_service_the_gateway_sends_it_to(path: str, service: str) -> None:
    assert MICROSERVICES_LAYOUT.rest_edge(path) == service


def test_a_grpc_call_enters_the_service_of_its_grpc_service() -> None:
    assert MICROSERVICES_LAYOUT.grpc_edge("/arcana.v1.AuthService/Login") == AUTH
    assert MICROSERVICES_LAYOUT.grpc_edge("/arcana.v1.UserService/GetUser") == USERS


def test_a_login_enters_the_auth_service_which_asks_the_users_service(
    microservices: Deployed, user: User
) -> None:
    response = APIClient().post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert microservices.crossed(USERS) == [
        "users.service.user_authenticate",
        "users.service.user_login_record",
    ]
    assert {call.caller for call in microservices.calls(USERS)} == {AUTH}
    assert microservices.crossed(AUTH) == []


def test_a_password_change_goes_to_users_and_its_sessions_end_back_in_auth(
    microservices: Deployed, user: User
) -> None:
    body = {"current_password": DEFAULT_PASSWORD, "new_password": STRONG}
    assert client_for(user).post("/api/v1/auth/password", body, format="json").status_code == 204
    assert "users.service.user_set_password" in microservices.crossed(USERS)
    # users' password_changed signal, in the users service: authn's receiver hops back.
    assert microservices.crossed(AUTH) == ["authn.service.user_sessions_end"]
    assert {call.caller for call in microservices.calls(AUTH)} == {USERS}


def test_the_users_api_is_local_to_the_users_service(
    microservices: Deployed, user: User, users_stub: UserServiceStub, auth_stub: AuthServiceStub
) -> None:
    assert client_for(user).get(f"/api/v1/users/{user.pk}").status_code == 200
    request = users_pb2.GetUserRequest(id=str(user.pk))
    assert users_stub.GetUser(request, metadata=auth_for(user)).id == str(user.pk)
    assert microservices.crossed(USERS) == microservices.crossed(AUTH) == []
    # The auth service verifies the token itself and asks users for its user.
    assert auth_stub.Me(auth_pb2.MeRequest(), metadata=auth_for(user)).id == str(user.pk)
    assert microservices.crossed(USERS) == ["users.service.user_record"]


def test_each_service_sees_its_own_boundaries(microservices: Deployed) -> None:
    assert current_service.get() is None  # set-up and assertions: local, as in monolithic mode
    assert (bound(users.service), bound(users.repo)) == (services, repository)
    assert bound(authn.service) is auth_services
    with microservices.at(USERS):
        assert (bound(users.service), bound(users.repo)) == (services, repository)
        assert isinstance(bound(authn.service), RemoteBoundary)
        with pytest.raises(NotReachable, match=r"^authn\.repo is out of reach of the users"):
            authn.repo.refresh_token_revoked(jti="x")
    with microservices.at(AUTH):
        assert bound(authn.service) is auth_services
        assert isinstance(bound(users.service), RemoteBoundary)
        with pytest.raises(NotReachable, match=r"^users\.repo is out of reach of the auth"):
            users.repo.user_get(user_id="x")
    verdict = microservices.guard.verdict() or ""
    assert "users service: authn.repo is out of reach" in verdict
    assert "auth service: users.repo is out of reach" in verdict
    microservices.guard.refused.clear()  # the deliberate uses must not fail this test


def test_the_guard_refuses_the_other_services_models(microservices: Deployed) -> None:
    assert User.objects.count() == RefreshToken.objects.count() == 0  # outside: allowed
    with microservices.at(AUTH):
        assert RefreshToken.objects.count() == 0
        with pytest.raises(ForeignDataUse, match=r"^users\.User is the users service's data"):
            User.objects.count()
    with microservices.at(USERS):
        assert User.objects.count() == 0
        with pytest.raises(ForeignDataUse, match=r"^authn\.RefreshToken is the auth service's"):
            RefreshToken.objects.exists()
    with pytest.raises(pytest.fail.Exception, match=r"auth service: users\.User is the users"):
        microservices.guard.check()
    microservices.guard.refused.clear()


def test_a_swallowed_foreign_read_in_the_other_services_server_still_fails_the_test(
    microservices: Deployed, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """authn's code reading users' table directly, inside the auth service's
    internal server, where the error is swallowed: the request succeeds, the
    test does not."""
    honest = auth_services.user_sessions_end

    def user_sessions_end(**arguments: Any) -> int:
        with suppress(ForeignDataUse):
            User.objects.filter(pk=arguments["user_id"]).exists()
        return honest(**arguments)

    monkeypatch.setattr(auth_services, "user_sessions_end", user_sessions_end)
    body = {"current_password": DEFAULT_PASSWORD, "new_password": STRONG}
    assert client_for(user).post("/api/v1/auth/password", body, format="json").status_code == 204
    assert microservices.crossed(AUTH) == ["authn.service.user_sessions_end"]
    assert "auth service: users.User is the users service's data" in (
        microservices.guard.verdict() or ""
    )
    microservices.guard.refused.clear()
