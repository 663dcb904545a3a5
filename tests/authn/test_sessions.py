"""The caller's sessions: ``GET /auth/sessions`` and ``DELETE
/auth/sessions/{id}`` in every deployment mode (the RPCs: tests/grpc/test_sessions.py)."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import client_for, tokens_for
from tests.layered import every_mode
from users.models import User

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), every_mode]

SESSION_FIELDS = {"id", "created_at", "expires_at", "current"}


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/refresh", {"refresh": token}, format="json")


def test_the_caller_lists_their_live_sessions_and_which_one_is_theirs(
    user: User, other_user: User
) -> None:
    mine, laptop = tokens_for(user), tokens_for(user)
    tokens_for(other_user)  # not theirs to see
    ended = tokens_for(user)
    client_for(token=ended.access).post(
        "/api/v1/auth/logout", {"refresh": ended.refresh}, format="json"
    )
    answer = client_for(token=mine.access).get("/api/v1/auth/sessions")
    assert answer.status_code == 200
    sessions = answer.json()["data"]
    assert len(sessions) == 2
    assert all(set(session) == SESSION_FIELDS for session in sessions)
    assert [session["current"] for session in sessions].count(True) == 1
    current = next(session for session in sessions if session["current"])
    assert current["created_at"] < current["expires_at"]

    # A rotation keeps the session (and its id); the new access token is still in it.
    rotated = refresh(laptop.refresh).json()
    after = client_for(token=rotated["access"]).get("/api/v1/auth/sessions").json()["data"]
    assert {session["id"] for session in after} == {session["id"] for session in sessions}
    laptop_id = next(session["id"] for session in after if session["current"])
    assert laptop_id != current["id"]


def test_ending_a_session_kills_its_refresh_token_only(user: User, other_user: User) -> None:
    mine, laptop = tokens_for(user), tokens_for(user)
    client = client_for(token=mine.access)
    laptop_id = next(
        session["id"]
        for session in client_for(token=laptop.access).get("/api/v1/auth/sessions").json()["data"]
        if session["current"]
    )
    assert client.delete(f"/api/v1/auth/sessions/{laptop_id}").status_code == 204
    assert refresh(laptop.refresh).status_code == 401
    assert refresh(mine.refresh).status_code == 200
    again = client.delete(f"/api/v1/auth/sessions/{laptop_id}")
    assert (again.status_code, again.json()["code"]) == (404, "session_not_found")

    # Someone else's session is not found either, and lives on.
    theirs = tokens_for(other_user)
    their_id = client_for(token=theirs.access).get("/api/v1/auth/sessions").json()["data"][0]["id"]
    assert client.delete(f"/api/v1/auth/sessions/{their_id}").status_code == 404
    assert refresh(theirs.refresh).status_code == 200


def test_sessions_need_a_token() -> None:
    assert APIClient().get("/api/v1/auth/sessions").status_code == 401
    assert APIClient().delete("/api/v1/auth/sessions/x").status_code == 401
