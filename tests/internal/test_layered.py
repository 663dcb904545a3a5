"""The layered harness itself (tests/layered.py): what crosses each hop, from
which tier, and that the no-query guard refuses and fails a test.

The API suites run in layered mode through ``every_mode``
(tests/users/test_api.py, tests/authn/test_api.py, tests/grpc/test_users.py,
tests/grpc/test_auth.py, tests/grpc/test_parity.py); these tests check that
their layered runs mean what they say."""

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

import authn
import users
from arcana.core.delegation import NotReachable
from arcana.core.internal import RemoteBoundary
from arcana.db.refuse.base import HiddenDatabaseUse
from authn import services as auth_services
from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.conftest import client_for
from tests.factories import DEFAULT_PASSWORD
from tests.grpc.conftest import auth_for
from tests.internal.conftest import live_db
from tests.layered import (
    CONTROLLER,
    REPOSITORY,
    SERVICE,
    ByPlace,
    Layered,
    at_tier,
    current_tier,
)
from users import repository, services
from users.models import User

pytestmark = live_db

STRONG = "a long and unusual passphrase 42"


def test_a_login_crosses_both_hops_each_from_the_tier_above(layered: Layered, user: User) -> None:
    response = APIClient().post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert layered.crossed(SERVICE) == ["authn.service.auth_login"]
    assert {"users.repo.user_credentials", "authn.repo.refresh_token_record"} <= set(
        layered.crossed(REPOSITORY)
    )
    assert {call.caller for call in layered.calls(SERVICE)} == {CONTROLLER}
    assert {call.caller for call in layered.calls(REPOSITORY)} == {SERVICE}


def test_authn_reaches_users_inside_the_service_tier(layered: Layered) -> None:
    """authn.services.auth_register calls users.service.user_create: in the
    service tier that is a local call, as in production, not a trip back
    through the controller hop."""
    body = {"name": "New Person", "email": "new@example.com", "password": STRONG}
    assert APIClient().post("/api/v1/auth/register", body, format="json").status_code == 201
    assert layered.crossed(SERVICE) == ["authn.service.auth_register"]
    assert {"users.repo.user_insert", "authn.repo.refresh_token_record"} <= set(
        layered.crossed(REPOSITORY)
    )


def test_grpc_requests_enter_the_controller_tier(
    layered: Layered, users_stub: UserServiceStub, user: User
) -> None:
    request = users_pb2.GetUserRequest(id=str(user.pk))
    assert users_stub.GetUser(request, metadata=auth_for(user)).id == str(user.pk)
    # The edge verifies the token itself and asks for its user, then for the user asked for.
    assert layered.crossed(SERVICE) == ["users.service.user_record", "users.service.user_get"]
    assert "users.repo.user_get" in layered.crossed(REPOSITORY)


def bound(boundary: object) -> object:
    """What ``boundary`` (a package attribute) is in the running code's tier."""
    assert isinstance(boundary, ByPlace)
    return boundary.current()


def test_each_tier_sees_its_own_boundaries(layered: Layered) -> None:
    assert current_tier.get() is None  # set-up and assertions: local, as in monolithic mode
    assert (bound(users.service), bound(users.repo)) == (services, repository)
    with at_tier(CONTROLLER):
        for app in (users, authn):
            assert isinstance(bound(app.service), RemoteBoundary)
        with pytest.raises(NotReachable, match=r"users\.repo is out of reach"):
            users.repo.user_get(user_id="x")
    with at_tier(SERVICE):
        assert (bound(users.service), bound(authn.service)) == (services, auth_services)
        for app in (users, authn):
            assert isinstance(bound(app.repo), RemoteBoundary)
    with at_tier(REPOSITORY):
        assert (bound(users.service), bound(users.repo)) == (services, repository)
    # Using an out-of-reach boundary fails the test, like a query does.
    assert "users.repo is out of reach" in (layered.guard.verdict() or "")
    layered.guard.refused.clear()


def test_the_guard_refuses_a_query_in_the_controller_tier(layered: Layered) -> None:
    assert User.objects.count() == 0  # outside any tier (set-up, assertions): allowed
    with layered.controller(), pytest.raises(HiddenDatabaseUse, match="SELECT COUNT"):
        User.objects.count()
    with pytest.raises(pytest.fail.Exception, match="controller tier: SELECT COUNT"):
        layered.guard.check()
    layered.guard.refused.clear()  # the deliberate query must not fail this test


def test_the_guard_refuses_a_query_in_the_service_tier(
    layered: Layered, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service that slipped an ORM call in fails the request and the test,
    even where the error is turned into an answer."""
    honest = services.user_get

    def user_get(**arguments: Any) -> Any:
        User.objects.filter(pk=arguments["user_id"]).exists()
        return honest(**arguments)

    monkeypatch.setattr(services, "user_get", user_get)
    response = client_for(user).get(f"/api/v1/users/{user.pk}")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_call_failed"
    assert layered.crossed(SERVICE)[-1] == "users.service.user_get"
    # The ORM call's SQL (on MySQL, first the server probe a fresh connection runs).
    verdict = layered.guard.verdict() or ""
    assert "service tier: " in verdict
    assert "SELECT" in verdict
    layered.guard.refused.clear()


def test_the_repository_tier_keeps_its_database(layered: Layered, user: User) -> None:
    with at_tier(REPOSITORY):
        assert User.objects.filter(pk=user.pk).exists()
    assert layered.guard.verdict() is None


def test_a_cached_user_record_costs_no_hop_until_a_write_invalidates_it(
    layered: Layered, user: User
) -> None:
    """The caller lookup (users.service.user_record, every authenticated
    request) and users.repo.user_get are read from the shared cache the
    repository keeps exact; a miss, and a record invalidated by a write, go
    through the tiers as before."""
    client = client_for(user)
    path = f"/api/v1/users/{user.id}"
    cache.delete(repository.CACHE_KEY.format(user.id))  # the creation's tombstone
    assert client.get(path).status_code == 200  # cold: the repository fills the cache
    assert layered.crossed(SERVICE) == ["users.service.user_record", "users.service.user_get"]
    assert layered.crossed(REPOSITORY) == ["users.repo.user_get"]

    layered.calls(SERVICE).clear()
    layered.calls(REPOSITORY).clear()
    assert client.get(path).json()["name"] == user.name  # warm: the caller from the cache
    assert layered.crossed(SERVICE) == ["users.service.user_get"]  # the access rule
    assert layered.crossed(REPOSITORY) == []

    renamed = client.patch(path, {"name": "Renamed Person"}, format="json")
    assert renamed.status_code == 200
    layered.calls(SERVICE).clear()
    layered.calls(REPOSITORY).clear()
    assert client.get(path).json()["name"] == "Renamed Person"  # invalidated: no stale read
    assert layered.crossed(SERVICE) == ["users.service.user_record", "users.service.user_get"]
    # Both reads miss (the write's tombstone) and go to the repository.
    assert layered.crossed(REPOSITORY) == ["users.repo.user_get", "users.repo.user_get"]
