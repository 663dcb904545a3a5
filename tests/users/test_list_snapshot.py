"""Regression: a page of users and its ``total`` come from one snapshot.

Found by tests/live/test_load.py: under concurrent creates on MariaDB, ListUsers
answered 19 users with ``total`` 18, because the count and the page were two
autocommit queries. Both now run in one transaction.
"""

import pytest
from django.db import connection

from users import repository
from users.models import UserQuerySet


# serialized_rollback, as tests/grpc does: keeps transactional tests order-independent.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_count_runs_inside_an_atomic_block(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    count = UserQuerySet.count

    def spying_count(self: UserQuerySet) -> int:
        seen.append(connection.in_atomic_block)
        return count(self)

    monkeypatch.setattr(UserQuerySet, "count", spying_count)
    repository.user_list(page=0, size=10, sync_status=None, search=None)
    assert seen == [True]
