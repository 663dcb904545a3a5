"""What admins do to users through the API (REST and gRPC, every deployment
mode) is in the admin's History of those users: who, what, when (the
History page itself: tests/users/test_admin.py)."""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.layered import every_mode
from users.models import User

pytestmark = [pytest.mark.django_db, every_mode]

STRONG = "a long and unusual passphrase 42"


def history(user_id: str) -> list[tuple[int, str, str]]:
    return [
        (entry.action_flag, entry.get_change_message(), str(entry.user_id))
        for entry in LogEntry.objects.filter(object_id=user_id).order_by("action_time", "id")
    ]


def test_an_admins_api_changes_are_in_the_users_history(
    admin_user: User, admin_client: APIClient
) -> None:
    created = admin_client.post(
        "/api/v1/users",
        {"name": "Audited Person", "email": "audited@example.com", "password": STRONG},
        format="json",
    ).json()
    user_id = created["id"]
    changed = admin_client.patch(
        f"/api/v1/users/{user_id}",
        {"name": "Renamed Person", "sync_status": "pending", "roles": ["user"]},
        format="json",
    )
    assert changed.status_code == 200
    admin = str(admin_user.pk)
    assert history(user_id) == [
        (ADDITION, "Added through the API.", admin),
        (CHANGE, "Changed name, sync_status, roles through the API.", admin),
    ]

    assert admin_client.delete(f"/api/v1/users/{user_id}").status_code == 204
    assert history(user_id)[-1] == (DELETION, "Deleted through the API.", admin)


def test_a_users_own_changes_and_no_op_updates_write_no_history(
    user: User, admin_client: APIClient
) -> None:
    own = client_for(user).patch(f"/api/v1/users/{user.pk}", {"name": "Me Myself"}, format="json")
    assert own.status_code == 200
    unchanged = admin_client.patch(f"/api/v1/users/{user.pk}", {"name": "Me Myself"}, format="json")
    assert unchanged.status_code == 200
    assert history(str(user.pk)) == []
