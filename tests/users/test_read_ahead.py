"""One cache round trip serves the caller and the target of a REST read
(``arcana.core.context.ReadAhead``), with the answers unchanged; gRPC's in
tests/grpc/test_read_ahead.py."""

import pytest
from rest_framework.test import APIClient

from tests.cache_spy import CountingCache
from users.models import User


@pytest.mark.django_db
def test_rest_reads_caller_and_target_in_one_round_trip(
    admin_client: APIClient, warm_users: CountingCache, other_user: User, admin_user: User
) -> None:
    response = admin_client.get(f"/api/v1/users/{other_user.pk}")
    assert response.json()["email"] == other_user.email
    assert warm_users.calls == ["get_many"]
    warm_users.calls.clear()
    assert admin_client.get(f"/api/v1/users/{admin_user.pk}").json()["email"] == admin_user.email
    assert warm_users.calls == ["get"]  # reading oneself: the caller's record, once


@pytest.mark.django_db
def test_rest_writes_and_lists_read_nothing_ahead(
    admin_client: APIClient, warm_users: CountingCache, other_user: User
) -> None:
    response = admin_client.patch(
        f"/api/v1/users/{other_user.pk}", {"name": "New Name"}, format="json"
    )
    assert response.json()["name"] == "New Name"
    assert "get_many" not in warm_users.calls
    assert admin_client.get(f"/api/v1/users/{other_user.pk}").json()["name"] == "New Name"
