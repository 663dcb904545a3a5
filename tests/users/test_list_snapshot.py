"""Regression: a page of users and its ``total`` come from one snapshot.

Found by tests/live/test_load.py: under concurrent creates on MariaDB, ListUsers
answered 19 users with ``total`` 18, because the count and the page were two
statements. Both now come from one (a window count), so no write can fall
between them; the live load test checks it under real concurrency.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory
from users import repository

pytestmark = pytest.mark.django_db


def test_page_and_total_come_from_one_statement() -> None:
    for _ in range(5):
        UserFactory.create()
    with CaptureQueriesContext(connection) as queries:
        page = repository.user_list(page=1, size=2, sync_status=None, search=None)
    assert page.total == 5
    assert len(page.users) == 2
    users_queries = [
        q["sql"] for q in queries if "users_user" in q["sql"] and "COUNT" in q["sql"].upper()
    ]
    assert len(users_queries) == 1  # the page itself carries the count
    assert len(queries) == 2  # the page (with its total) and the roles prefetch


def test_total_past_the_last_page() -> None:
    for _ in range(3):
        UserFactory.create()
    page = repository.user_list(page=5, size=2, sync_status=None, search=None)
    assert page.users == []
    assert page.total == 3


def test_total_follows_filters() -> None:
    UserFactory.create(name="Match Me", sync_status="pending")
    UserFactory.create(name="Other", sync_status="pending")
    UserFactory.create(name="Match Too")
    page = repository.user_list(page=0, size=10, sync_status="pending", search="match")
    assert [u.name for u in page.users] == ["Match Me"]
    assert page.total == 1
