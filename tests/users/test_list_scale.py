"""The user list at scale below the API: the seeder (bench/seed.py), the
keyset read's position and ties, and, on MariaDB/MySQL, that the keyset
query is an ordered range read of the list indexes (migration 0006)."""

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench import seed
from users import repository
from users.models import Roles, User

pytestmark = pytest.mark.django_db


def after(user: User | None = None, **filters: Any) -> list[str]:
    page = repository.user_list_after(
        size=100,
        after_created_at=user.created_at if user else None,
        after_id=str(user.pk) if user else None,
        sync_status=filters.get("sync_status"),
        search=filters.get("search"),
        is_active=filters.get("is_active"),
    )
    assert page.total is None
    assert page.page is None
    return [record.id for record in page.users]


def test_the_seed_is_idempotent_and_resumes() -> None:
    assert seed.seed(30, batch=7, verbose=False) == 30
    assert User.objects.count() == 30
    assert seed.seed(30, batch=7, verbose=False) == 0
    User.objects.filter(
        email__in=["seed-0000003@bench.example", "seed-0000029@bench.example"]
    ).delete()
    assert seed.seed(30, batch=7, verbose=False) == 2  # new numbers: no address taken twice
    assert User.objects.filter(email="seed-0000030@bench.example").exists()
    users = User.objects.all()
    assert users.filter(roles__name=Roles.USER).count() == 30
    assert users.filter(roles__name=Roles.ADMIN).count() == users.filter(is_staff=True).count() > 0
    assert {"synced", "pending", "failed"} == set(users.values_list("sync_status", flat=True))
    assert set(users.values_list("is_active", flat=True)) == {True, False}
    # Every tenth pair shares a timestamp, so the id tie-breaker is exercised.
    assert users.values("created_at").distinct().count() < 30
    anyone = users.first()
    assert anyone is not None
    assert anyone.check_password(seed.SEED_PASSWORD)


def test_keyset_reads_after_the_position_and_orders_ties_by_id() -> None:
    seed.seed(12, verbose=False)
    ordered = list(User.objects.order_by("created_at", "id"))
    same = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    User.objects.filter(pk__in=[u.pk for u in ordered[4:8]]).update(created_at=same)
    ordered = list(User.objects.order_by("created_at", "id"))
    assert after() == [str(u.pk) for u in ordered]
    for index, user in enumerate(ordered):
        assert after(user) == [str(u.pk) for u in ordered[index + 1 :]]
    pending = [str(u.pk) for u in ordered if u.sync_status == "pending"]
    assert after(sync_status="pending") == pending
    inactive = [str(u.pk) for u in ordered if not u.is_active]
    assert after(is_active=False) == inactive


def test_offset_pages_know_whether_more_follow() -> None:
    seed.seed(5, verbose=False)
    assert repository.user_list(page=0, size=4, sync_status=None, search=None).has_more
    last = repository.user_list(page=1, size=4, sync_status=None, search=None)
    assert not last.has_more
    assert len(last.users) == 1


@pytest.mark.mysql  # EXPLAIN of MariaDB/MySQL
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "users_list_created"),
        ({"sync_status": "pending"}, "users_list_sync"),
        ({"is_active": False}, "users_list_active"),
    ],
)
def test_the_keyset_query_is_a_range_read_of_its_index(filters: dict[str, Any], index: str) -> None:
    seed.seed(3000, verbose=False)  # enough rows that a scan would cost
    middle = User.objects.order_by("created_at", "id")[1500]
    with CaptureQueriesContext(connection) as queries:
        after(middle, **filters)
    page_query = next(q["sql"] for q in queries if "FROM `users_user`" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {page_query}")
        columns = [column[0] for column in cursor.description]
        plans = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    assert len(plans) == 1, plans
    plan = plans[0]
    assert plan["key"] == index, plan
    assert plan["type"] in ("range", "ref"), plan  # not "ALL" (a scan) nor "index"
    assert "filesort" not in (plan["Extra"] or ""), plan
