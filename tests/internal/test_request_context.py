"""A request's id and acting user, from the public edge (REST ``X-Request-ID``,
gRPC ``x-request-id``) to the far side of every internal hop."""

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from django.core.signals import request_finished, request_started
from rest_framework.test import APIClient

import users
from arcana.core.context import request_boundaries
from protos.arcana.v1 import users_pb2, users_pb2_grpc
from tests.conftest import client_for, tokens_for
from tests.internal.conftest import Hop, deploy_as, live_db, serving_tier
from users.interfaces import UserServiceInterface
from users.models import User

pytestmark = live_db

REQUEST_ID, ACTOR, CALLER = "x-request-id", "x-arcana-actor", "x-arcana-caller-tier"


def signed_in(user: User, *hops: Hop) -> APIClient:
    """A client with ``user``'s token; the hops forget the calls that minted it."""
    client = client_for(user)
    for hop in hops:
        hop.servicer.metadata.clear()
        hop.servicer.calls.clear()
    return client


def assert_one_request(seen: list[dict[str, str]], rid: str, actor: str, caller: str) -> None:
    """Every call of the request carried its id and the caller's tier; the
    first (authentication asking for the user behind the token) had nobody
    acting yet, the last (the view's own) names the user."""
    assert seen, "no call crossed the hop"
    assert [metadata[REQUEST_ID] for metadata in seen] == [rid] * len(seen)
    assert {metadata[CALLER] for metadata in seen} == {caller}
    assert ACTOR not in seen[0]
    assert seen[-1][ACTOR] == actor


def test_a_rest_request_reaches_the_repository_tier_with_its_id_and_user(
    across: Hop, user: User
) -> None:
    client = signed_in(user, across)
    response = client.get(f"/api/v1/users/{user.pk}", HTTP_X_REQUEST_ID="edge-req-42")
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"] == "edge-req-42"
    assert_one_request(across.servicer.metadata, "edge-req-42", str(user.pk), "service")


def test_the_id_the_edge_made_is_the_one_the_hop_sees(across: Hop, user: User) -> None:
    response = signed_in(user, across).get(f"/api/v1/users/{user.pk}")
    assert response.status_code == 200, response.content
    made = response["X-Request-ID"]
    assert len(made) == 32
    assert_one_request(across.servicer.metadata, made, str(user.pk), "service")


def test_a_grpc_call_reaches_the_repository_tier_with_its_id_and_user(
    across: Hop, grpc_channel: grpc.Channel, user: User
) -> None:
    metadata = (
        ("authorization", f"Bearer {tokens_for(user).access}"),
        (REQUEST_ID, "grpc-req-7"),
    )
    across.servicer.metadata.clear()  # minting the token crossed the hop too
    reply, call = users_pb2_grpc.UserServiceStub(grpc_channel).GetUser.with_call(
        users_pb2.GetUserRequest(id=str(user.pk)), metadata=metadata, timeout=10
    )
    assert reply.email == user.email
    assert (REQUEST_ID, "grpc-req-7") in tuple(call.initial_metadata())
    assert_one_request(across.servicer.metadata, "grpc-req-7", str(user.pk), "service")


@pytest.fixture
def service_hop(across: Hop, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hop]:
    """The controller -> service hop above ``across``: REST views call
    ``users.service`` across it, and the services there call ``users.repo``
    across the repository hop."""
    with serving_tier(monkeypatch, users, UserServiceInterface) as started:
        yield started


def test_both_hops_carry_the_id_and_the_user(service_hop: Hop, across: Hop, user: User) -> None:
    client = signed_in(user, service_hop, across)
    response = client.get(f"/api/v1/users/{user.pk}", HTTP_X_REQUEST_ID="edge-req-43")
    assert response.status_code == 200, response.content
    assert service_hop.methods() == ["user_record", "user_get"]
    assert_one_request(service_hop.servicer.metadata, "edge-req-43", str(user.pk), "controller")
    # Set again on the service tier's side from its metadata, and forwarded.
    assert_one_request(across.servicer.metadata, "edge-req-43", str(user.pk), "service")


@pytest.mark.parametrize(("tier", "sent"), [(None, 2), ("repository", 2), ("service", 0)])
def test_django_request_signals_only_where_a_database_is(
    settings: Any, tier: str | None, sent: int
) -> None:
    """Their receivers look after database connections and replica routing;
    the service and controller tiers hold none and skip them on every call."""
    if tier is not None:
        deploy_as(settings, tier)
    seen: list[str] = []

    def started(**kwargs: Any) -> None:
        seen.append("started")

    def finished(**kwargs: Any) -> None:
        seen.append("finished")

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        with request_boundaries(object):
            pass
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert len(seen) == sent
