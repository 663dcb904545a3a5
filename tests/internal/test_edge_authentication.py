"""The controller tier checks an access token's signature and expiry itself
(authn.authentication.token_authenticate): only a token that passes costs an
internal call, the one that asks the service tier (users.service) for the
user behind it."""

from collections.abc import Callable, Iterator

import pytest

import users
from tests.conftest import client_for, expired_token, forged_token
from tests.internal.conftest import Hop, live_db, serving_tier
from users.interfaces import UserServiceInterface
from users.models import User

pytestmark = live_db


@pytest.fixture
def service_tier(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hop]:
    """``users.service`` is a client of a service tier's internal server, as at the edge."""
    with serving_tier(monkeypatch, users, UserServiceInterface) as started:
        yield started


@pytest.mark.parametrize("bad", [forged_token, expired_token], ids=["forged", "expired"])
def test_a_bad_token_never_reaches_the_service_tier(
    service_tier: Hop, user: User, bad: Callable[[User], str]
) -> None:
    response = client_for(token=bad(user)).get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
    assert service_tier.servicer.calls == []


def test_a_good_token_costs_one_call_for_its_user(service_tier: Hop, user: User) -> None:
    response = client_for(user).get("/api/v1/auth/me")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == user.email
    assert service_tier.methods() == ["user_record"]


def test_a_deactivated_user_is_refused_on_the_record_the_service_tier_sends(
    service_tier: Hop, user: User
) -> None:
    client = client_for(user)
    user.is_active = False
    user.save()
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert service_tier.methods() == ["user_record"]
