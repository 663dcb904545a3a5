"""The last-admin rule under concurrency, on MariaDB's real row locks.

In-process (no servers), but here with the live tests because SQLite has no
row locks to test: two admins, the only two, demote themselves at the same
moment. The repository decides the rule inside the transaction that makes
the change, under one lock, so exactly one of them succeeds.

To make the race certain rather than likely, each change waits after its
check for the other to reach the same point (for at most ``MEET_SECONDS``):
without the lock both would pass the check, meet, and both commit, leaving no
admin; with it the second is still waiting for the lock, the first goes on
alone, and the second then sees that it is the last admin.
"""

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest
from django.db import connection

from tests.factories import UserFactory
from users import repository
from users.errors import LastAdmin
from users.models import Roles, User

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

MEET_SECONDS = 2.0


def test_two_admins_demoting_themselves_at_once_leave_one_admin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert connection.vendor == "mysql"
    admins = [str(UserFactory.create(admin=True).pk) for _ in range(2)]
    meet = threading.Barrier(2, timeout=MEET_SECONDS)
    checked = repository._refuse_last_admin

    def check_then_meet(*args: Any, **kwargs: Any) -> None:
        checked(*args, **kwargs)
        # A broken barrier: the other one is waiting for the lock, go on alone.
        with suppress(threading.BrokenBarrierError):
            meet.wait()

    monkeypatch.setattr(repository, "_refuse_last_admin", check_then_meet)
    outcomes: dict[str, str] = {}

    def demote(user_id: str) -> Callable[[], None]:
        def run() -> None:
            try:
                repository.user_update_fields(user_id=user_id, changes={}, roles=[Roles.USER])
                outcomes[user_id] = "demoted"
            except LastAdmin:
                outcomes[user_id] = "refused"
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=demote(user_id)) for user_id in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["demoted", "refused"]
    still_admin = User.objects.filter(is_active=True, roles__name=Roles.ADMIN)
    assert [str(pk) for pk in still_admin.values_list("pk", flat=True)] == [
        user_id for user_id, outcome in outcomes.items() if outcome == "refused"
    ]
