"""The caller as the core hands it to controllers: checked to be the type they take."""

from dataclasses import dataclass

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from arcana.core.exceptions import Unauthenticated
from arcana.core.grpc import authenticated_as, current_actor, current_caller
from arcana.core.principal import Principal, authenticator_load
from arcana.core.rest import actor_of, caller_of, principal_of
from authn.authentication import authorization_authenticate
from authn.services import Authenticated
from users.records import Actor


@dataclass(frozen=True)
class FakeCaller:
    """Another authenticator's idea of a caller: a Caller, but not authn's."""

    actor: Actor
    session_id: str | None = None


ANN = Actor(id="ann", roles=("user",))


def request_by(user: object) -> Request:
    request = Request(APIRequestFactory().get("/"))
    request.user = user  # type: ignore[assignment]
    return request


def test_rest_controllers_get_the_types_they_take() -> None:
    request = request_by(Principal(FakeCaller(actor=ANN, session_id="s1")))
    assert actor_of(request, Actor) is ANN
    assert caller_of(request, FakeCaller).session_id == "s1"
    assert principal_of(request).pk == "ann"


def test_a_caller_of_another_type_is_a_deployment_error_not_a_user() -> None:
    request = request_by(Principal(FakeCaller(actor=ANN)))
    with pytest.raises(TypeError, match="FakeCaller is not the Authenticated"):
        caller_of(request, Authenticated)


def test_rest_without_a_principal_is_not_authenticated() -> None:
    with pytest.raises(NotAuthenticated):
        actor_of(request_by(None), Actor)


def test_grpc_caller_exists_only_inside_the_call() -> None:
    with pytest.raises(Unauthenticated):
        current_actor(Actor)  # a servicer reached without the interceptor: fail closed
    caller = FakeCaller(actor=ANN)
    with authenticated_as(caller):
        assert current_actor(Actor) is ANN
        assert current_caller(FakeCaller) is caller
        with pytest.raises(TypeError):
            current_caller(Authenticated)
    with pytest.raises(Unauthenticated):
        current_caller(FakeCaller)


def anybody(*, authorization: str | None) -> FakeCaller:
    return FakeCaller(actor=ANN)


def test_the_authenticator_comes_from_the_setting() -> None:
    assert authenticator_load() is authorization_authenticate
    with override_settings(ARCANA_AUTHENTICATOR="tests.core.test_principal.anybody"):
        assert authenticator_load()(authorization=None).actor is ANN


@pytest.mark.parametrize(
    "path", ["tests.core.no_such_module.authenticate", "arcana.core.grpc_compat.COMMAND_NAME"]
)
def test_an_authenticator_that_is_not_a_function_is_refused(path: str) -> None:
    with override_settings(ARCANA_AUTHENTICATOR=path), pytest.raises(ImproperlyConfigured):
        authenticator_load()
