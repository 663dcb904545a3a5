"""Work of two commits is ordered so that a failure between them leaves a safe
state that a retry completes (the REST side; registration over both
transports is in tests/grpc/test_ordered_writes.py).

- registration: the user, then the first session;
- password change: end the other sessions, then store the new hash;
- refresh: one repository transaction revokes the old token and records the
  new one, so a failure in it leaves the old token working.
"""

from typing import Any

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from authn.models import RefreshToken
from tests.conftest import client_for, tokens_for
from tests.factories import DEFAULT_PASSWORD
from tests.layered import every_mode
from users.models import User

pytestmark = [pytest.mark.django_db, every_mode]

STRONG = "a long and unusual passphrase 42"


def down(**kwargs: Any) -> None:
    raise OperationalError("the database went away")


def login(email: str, password: str) -> int:
    body = {"email": email, "password": password}
    return int(APIClient().post("/api/v1/auth/login", body, format="json").status_code)


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/refresh", {"refresh": token}, format="json")


def test_register_commits_the_user_before_the_first_session(
    anon_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"name": "Half Way", "email": "half.way@example.com", "password": STRONG}
    monkeypatch.setattr("authn.repository.refresh_token_record", down)
    response = anon_client.post("/api/v1/auth/register", body, format="json")
    monkeypatch.undo()
    assert response.status_code == 503
    created = User.objects.get(email="half.way@example.com")
    assert created.check_password(STRONG)
    assert not RefreshToken.objects.filter(user_id=str(created.pk)).exists()
    assert login(body["email"], STRONG) == 200
    retried = anon_client.post("/api/v1/auth/register", body, format="json")
    assert (retried.status_code, retried.json()["code"]) == (409, "email_taken")


def test_password_change_ends_the_other_sessions_before_it_stores_the_hash(
    user: User, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    mine, other = tokens_for(user), tokens_for(user)
    client = client_for(token=mine.access)
    change = {"current_password": DEFAULT_PASSWORD, "new_password": STRONG}
    monkeypatch.setattr("users.repository.user_set_password_hash", down)
    with django_capture_on_commit_callbacks(execute=True):
        failed = client.post("/api/v1/auth/password", change, format="json")
    monkeypatch.undo()
    assert failed.status_code == 503
    # Between the steps: the old password works, the other session is over,
    # the caller's own lives on.
    assert refresh(other.refresh).status_code == 401
    assert (login(user.email, DEFAULT_PASSWORD), login(user.email, STRONG)) == (200, 401)
    opened_meanwhile = tokens_for(user)
    # The retry completes the change and ends the session opened in between.
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/v1/auth/password", change, format="json").status_code == 204
    assert (login(user.email, DEFAULT_PASSWORD), login(user.email, STRONG)) == (401, 200)
    assert refresh(opened_meanwhile.refresh).status_code == 401
    assert refresh(mine.refresh).status_code == 200


def test_a_refused_new_password_ends_no_session(user: User) -> None:
    other = tokens_for(user)
    response = client_for(user).post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "password"},
        format="json",
    )
    assert response.status_code == 400
    assert refresh(other.refresh).status_code == 200


def test_a_rotation_that_fails_leaves_the_old_refresh_token_working(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = tokens_for(user)
    monkeypatch.setattr("authn.repository.refresh_token_record", down)
    assert refresh(pair.refresh).status_code == 503
    monkeypatch.undo()
    # Not a replay: the revocation was rolled back with the failed rotation.
    rotated = refresh(pair.refresh)
    assert rotated.status_code == 200
    assert refresh(rotated.json()["refresh"]).status_code == 200
