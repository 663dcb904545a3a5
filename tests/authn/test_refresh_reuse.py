"""Refresh-token reuse over REST: a rotated or logged-out refresh token that
comes back ends every token descended from it (RFC 9700 §4.14.2), and nothing
else. The gRPC twins are in tests/grpc/test_refresh_reuse.py."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from authn import repository, services
from authn.errors import TokenInvalid
from authn.models import RefreshToken
from authn.tokens import FAMILY_CLAIM, ArcanaRefreshToken
from tests.conftest import client_for, decode_access, tokens_for
from users.models import User

pytestmark = pytest.mark.django_db


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/refresh", {"refresh": token}, format="json")


def rotate(token: str) -> dict[str, str]:
    response = refresh(token)
    assert response.status_code == 200, response.content
    body: dict[str, str] = response.json()
    return body


def claims(token: str) -> ArcanaRefreshToken:
    return ArcanaRefreshToken(token, verify=False)  # type: ignore[arg-type]


def test_a_family_starts_at_login_and_is_inherited(user: User) -> None:
    r0 = tokens_for(user)
    r1 = rotate(r0.refresh)
    r2 = rotate(r1["refresh"])
    family = claims(r0.refresh)["jti"]
    assert claims(r0.refresh)[FAMILY_CLAIM] == family
    assert claims(r1["refresh"])[FAMILY_CLAIM] == family
    assert claims(r2["refresh"])[FAMILY_CLAIM] == family
    # Every token of the chain, the first one included, is stored as of the family.
    assert list(RefreshToken.objects.values_list("family", flat=True)) == [family] * 3
    # Access tokens keep the contract's claims.
    assert FAMILY_CLAIM not in decode_access(r1["access"]).payload


def test_replaying_a_rotated_token_ends_its_family(user: User) -> None:
    r0 = tokens_for(user)
    r1 = rotate(r0.refresh)
    replay = refresh(r0.refresh)
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_not_valid"
    assert refresh(r1["refresh"]).status_code == 401
    # Access tokens are stateless: R1's works until it expires (15 minutes).
    assert client_for(token=r1["access"]).get("/api/v1/auth/me").status_code == 200


def test_replay_in_the_middle_of_a_chain_kills_the_newest(user: User) -> None:
    r0 = tokens_for(user)
    r1 = rotate(r0.refresh)
    r2 = rotate(r1["refresh"])
    assert refresh(r1["refresh"]).status_code == 401
    assert refresh(r2["refresh"]).status_code == 401
    assert refresh(r0.refresh).status_code == 401


def test_replay_leaves_other_sessions_alone(user: User, other_user: User) -> None:
    session, other_session, stranger = tokens_for(user), tokens_for(user), tokens_for(other_user)
    rotate(session.refresh)
    assert refresh(session.refresh).status_code == 401
    rotate(other_session.refresh)
    rotate(stranger.refresh)


def test_replaying_a_logged_out_token_is_refused_and_touches_no_other_session(
    user: User,
) -> None:
    session, other_session = tokens_for(user), tokens_for(user)
    r1 = rotate(session.refresh)
    logout = client_for(token=r1["access"]).post(
        "/api/v1/auth/logout", {"refresh": r1["refresh"]}, format="json"
    )
    assert logout.status_code == 204
    assert refresh(r1["refresh"]).status_code == 401
    assert refresh(session.refresh).status_code == 401
    rotate(other_session.refresh)


def test_logout_with_a_rotated_token_ends_its_session(user: User) -> None:
    """A client whose refresh raced its logout presents the older token: the
    session still ends (reuse), with the 401 a dead token gets."""
    r0 = tokens_for(user)
    r1 = rotate(r0.refresh)
    logout = client_for(token=r1["access"]).post(
        "/api/v1/auth/logout", {"refresh": r0.refresh}, format="json"
    )
    assert logout.status_code == 401
    assert refresh(r1["refresh"]).status_code == 401


def test_a_token_from_before_families_still_refreshes_and_is_its_own_family(
    user: User,
) -> None:
    legacy = ArcanaRefreshToken.issue(user_id=str(user.pk), roles=["user"])
    del legacy[FAMILY_CLAIM]
    repository.refresh_token_record(
        jti=legacy["jti"],
        user_id=str(user.pk),
        token=str(legacy),
        created_at=legacy.current_time,
        expires_at=legacy.current_time + legacy.lifetime,
    )
    r1 = rotate(str(legacy))
    assert claims(r1["refresh"])[FAMILY_CLAIM] == legacy["jti"]
    r2 = rotate(r1["refresh"])
    assert refresh(str(legacy)).status_code == 401
    assert refresh(r2["refresh"]).status_code == 401


def test_losing_a_concurrent_refresh_is_reuse_and_ends_the_winner_too(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uses of one token: the second passes the blacklist check before the
    first commits, then loses the conditional revocation update. Under RFC 9700 it is
    a replay like any other (tests/live/test_races.py runs it for real)."""
    r0 = tokens_for(user)
    parse = services._parse_refresh
    winners: list[services.TokenPair] = []

    def parse_then_lose(token: str) -> ArcanaRefreshToken:
        parsed = parse(token)
        monkeypatch.setattr(services, "_parse_refresh", parse)
        winners.append(services.auth_refresh(refresh=token))
        return parsed

    monkeypatch.setattr(services, "_parse_refresh", parse_then_lose)
    with pytest.raises(TokenInvalid):
        services.auth_refresh(refresh=r0.refresh)
    assert len(winners) == 1
    winner = RefreshToken.objects.get(jti=claims(winners[0].refresh)["jti"])
    assert winner.revoked_at is not None
    assert refresh(winners[0].refresh).status_code == 401


def test_a_family_revocation_counts_only_live_tokens(user: User) -> None:
    r0 = tokens_for(user)
    family = claims(r0.refresh)["jti"]
    assert repository.refresh_token_family_revoke(family=family) == 1
    assert repository.refresh_token_family_revoke(family=family) == 0
