"""The user list at scale over REST, in every mode: keyset pages (``cursor``
in, ``next_cursor`` out), the offset cap, and a ``total`` that costs bounded
work (exact up to a limit, a cached count flagged as an estimate beyond)."""

import datetime as dt
from typing import Any

import pytest
from django.core import signing
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.layered import every_mode
from users import cursors
from users.models import SyncStatus, User

pytestmark = [pytest.mark.django_db, every_mode]

LIST = "/api/v1/users"


def get(client: APIClient, **query: Any) -> dict[str, Any]:
    response = client.get(LIST, query)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def error_code(client: APIClient, **query: Any) -> str:
    response = client.get(LIST, query)
    assert response.status_code == 400, response.content
    code: str = response.json()["code"]
    return code


def walk(client: APIClient, size: int, **filters: Any) -> list[str]:
    """Every id, by cursor from the first page to the last."""
    body = get(client, size=size, **filters)
    seen = [user["id"] for user in body["data"]]
    while body["next_cursor"]:
        body = get(client, size=size, cursor=body["next_cursor"], **filters)
        assert set(body) == {"data", "size", "next_cursor"}  # no page, no count
        seen += [user["id"] for user in body["data"]]
    return seen


def in_order() -> list[str]:
    return [
        str(pk) for pk in User.objects.order_by("created_at", "id").values_list("pk", flat=True)
    ]


def test_first_page_by_offset_carries_a_cursor(admin_client: APIClient) -> None:
    UserFactory.create_batch(4)
    body = get(admin_client, size=2)
    assert (body["page"], body["size"], body["total"], body["total_is_estimate"]) == (
        0,
        2,
        5,
        False,
    )
    assert body["next_cursor"]
    following = get(admin_client, size=2, cursor=body["next_cursor"])
    assert [u["id"] for u in following["data"]] == in_order()[2:4]


def test_walking_the_cursor_visits_every_user_once_in_order(admin_client: APIClient) -> None:
    UserFactory.create_batch(9)
    # Ties on created_at are ordered by id: give four users one timestamp.
    tied = User.objects.order_by("created_at", "id").values_list("pk", flat=True)[3:7]
    User.objects.filter(pk__in=list(tied)).update(created_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    seen = walk(admin_client, size=3)
    assert seen == in_order()
    assert len(seen) == len(set(seen)) == 10


def test_last_page_has_no_next_cursor(admin_client: APIClient) -> None:
    UserFactory.create_batch(3)  # 4 with the admin: pages of 2, 2
    first = get(admin_client, size=2)
    last = get(admin_client, size=2, cursor=first["next_cursor"])
    assert len(last["data"]) == 2
    assert last["next_cursor"] is None
    assert get(admin_client, size=4)["next_cursor"] is None


def test_rows_inserted_and_deleted_while_walking_neither_repeat_nor_hide_others(
    admin_client: APIClient,
) -> None:
    UserFactory.create_batch(6)
    body = get(admin_client, size=3)
    seen = [u["id"] for u in body["data"]]
    # By offset, deleting a seen row would shift the next page by one (a gap);
    # inserting before the position would repeat one. By cursor, neither.
    User.objects.filter(pk=seen[1]).delete()
    early = UserFactory.create()
    User.objects.filter(pk=early.pk).update(created_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    late = UserFactory.create()
    while body["next_cursor"]:
        UserFactory.create()  # users keep arriving while the client walks
        body = get(admin_client, size=3, cursor=body["next_cursor"])
        seen += [u["id"] for u in body["data"]]
    assert len(seen) == len(set(seen))
    expected = [pk for pk in in_order() if pk not in {str(early.pk)}]
    assert [pk for pk in seen if pk != seen[1]] == expected
    assert str(late.pk) in seen


def test_filters_walk_by_cursor_too(admin_client: APIClient) -> None:
    UserFactory.create_batch(3, name="Quux Pending", sync_status=SyncStatus.PENDING)
    UserFactory.create_batch(2, name="Quux Synced")
    UserFactory.create(name="Quux Off", sync_status=SyncStatus.PENDING, is_active=False)
    UserFactory.create_batch(2, name="Other", sync_status=SyncStatus.PENDING)
    pending = walk(admin_client, size=2, search="quux", sync_status="pending")
    assert len(pending) == 4
    active = walk(admin_client, size=2, search="quux", sync_status="pending", is_active="true")
    assert len(active) == 3
    inactive = get(admin_client, is_active="false")
    assert [u["name"] for u in inactive["data"]] == ["Quux Off"]


@pytest.mark.parametrize(
    "other",
    [
        {"search": "other"},
        {"search": ""},  # none is not the one it was made for either
        {"search": "quux", "sync_status": "pending"},
        {"search": "quux", "is_active": "true"},
    ],
)
def test_a_cursor_with_other_filters_is_refused(
    admin_client: APIClient, other: dict[str, str]
) -> None:
    UserFactory.create_batch(3, name="Quux")
    cursor = get(admin_client, size=1, search="quux")["next_cursor"]
    assert error_code(admin_client, size=1, cursor=cursor, **other) == "cursor_filter_mismatch"


def test_a_tampered_cursor_is_refused(admin_client: APIClient) -> None:
    UserFactory.create_batch(2)
    cursor = get(admin_client, size=1)["next_cursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    assert error_code(admin_client, cursor=flipped) == "invalid_cursor"
    assert error_code(admin_client, cursor="not a cursor") == "invalid_cursor"
    # Signed with the key but not the salt, or with the salt but not a position.
    forged = signing.dumps({"after": [0, "x"], "filters": [None, None, None, cursors.ORDERING]})
    assert error_code(admin_client, cursor=forged) == "invalid_cursor"
    odd = signing.dumps({"after": "x", "filters": []}, salt=cursors.SALT)
    assert error_code(admin_client, cursor=odd) == "invalid_cursor"


def test_cursor_and_page_together_are_refused(admin_client: APIClient) -> None:
    UserFactory.create_batch(2)
    cursor = get(admin_client, size=1)["next_cursor"]
    assert error_code(admin_client, cursor=cursor, page=0) == "cursor_with_page"
    assert error_code(admin_client, cursor=cursor, page=1) == "cursor_with_page"


def test_an_empty_cursor_is_the_first_page(admin_client: APIClient) -> None:
    body = get(admin_client, cursor="")
    assert body["page"] == 0


def test_offset_pages_are_capped(admin_client: APIClient, settings: Any) -> None:
    assert get(admin_client, page=500, size=20)["data"] == []  # offset 10,000: the cap
    response = admin_client.get(LIST, {"page": 501, "size": 20})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "page_too_deep"
    assert "next_cursor" in body["error"]
    settings.USER_LIST_MAX_OFFSET = 2
    assert get(admin_client, page=1, size=2)["page"] == 1
    assert error_code(admin_client, page=3, size=1) == "page_too_deep"


def test_total_beyond_the_exact_limit_is_a_cached_estimate(
    admin_client: APIClient, settings: Any
) -> None:
    settings.USER_LIST_EXACT_TOTAL_UP_TO = 3
    UserFactory.create_batch(4)
    body = get(admin_client, size=2)
    assert (body["total"], body["total_is_estimate"]) == (5, True)
    UserFactory.create()
    # Counted again at most once per USER_LIST_COUNT_SECONDS.
    assert (get(admin_client)["total"], get(admin_client)["total_is_estimate"]) == (5, True)
    # A filter set of its own, counted exactly while it stays small.
    UserFactory.create(sync_status=SyncStatus.FAILED)
    failed = get(admin_client, sync_status="failed")
    assert (failed["total"], failed["total_is_estimate"]) == (1, False)
