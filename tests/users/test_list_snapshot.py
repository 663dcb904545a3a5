"""Regression: a page of users and its ``total`` come from one snapshot.

Found by tests/live/test_load.py: under concurrent creates on MariaDB, ListUsers
answered 19 users with ``total`` 18, because the count and the page were two
autocommit statements. Both now run in one snapshot transaction; the live
load test checks it under real concurrency on MariaDB.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory
from users import repository


# serialized_rollback, as tests/grpc does: keeps transactional tests order-independent.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_count_and_page_share_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(5):
        UserFactory.create()
    in_transaction: list[bool] = []
    execute = connection.ops.__class__.last_executed_query

    def spy(self: object, cursor: object, sql: str, params: object) -> str:
        if "COUNT(" in sql.upper() or "LIMIT" in sql.upper():
            in_transaction.append(connection.in_atomic_block)
        return execute(self, cursor, sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(connection.ops.__class__, "last_executed_query", spy)
    with CaptureQueriesContext(connection) as queries:
        page = repository.user_list(page=1, size=2, sync_status=None, search=None)
    assert (page.total, len(page.users)) == (5, 2)
    assert in_transaction == [True, True]  # the count, then the page
    statements = [query["sql"].upper() for query in queries]
    if connection.vendor == "mysql":
        count_at = next(i for i, sql in enumerate(statements) if "COUNT(" in sql)
        assert any("REPEATABLE READ" in sql for sql in statements[:count_at])


@pytest.mark.django_db
def test_total_past_the_last_page() -> None:
    for _ in range(3):
        UserFactory.create()
    page = repository.user_list(page=5, size=2, sync_status=None, search=None)
    assert page.users == []
    assert page.total == 3


@pytest.mark.django_db
def test_total_follows_filters() -> None:
    UserFactory.create(name="Match Me", sync_status="pending")
    UserFactory.create(name="Other", sync_status="pending")
    UserFactory.create(name="Match Too")
    page = repository.user_list(page=0, size=10, sync_status="pending", search="match")
    assert [u.name for u in page.users] == ["Match Me"]
    assert page.total == 1
