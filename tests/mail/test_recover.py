"""Tasks whose worker died mid-run (docker/entrypoint.sh recover, the Kubernetes
CronJob recover-tasks): ``manage.py recover_stuck_tasks`` on the real queue.

A task is claimed the way django-tasks-db's worker claims it
(``DBTaskResult.claim``: RUNNING, ``started_at`` now, the worker's id appended)
by a worker that then "dies": nothing finishes it. The claim is then aged past
``TASK_STUCK_AFTER_SECONDS``. Runs on SQLite, and on MariaDB with
``DATABASE_URL=mysql://...`` (the JSON length is spelled differently there).
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.mail.conftest import QueueWorker, enqueue, role_command

# The worker closes its database connection as the deployed one does: no
# test transaction to wrap it in (as in test_prune.py).
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("queue"),
]

STUCK_AFTER = 900  # the default


def claimed(email: str, *, seconds_ago: float, workers: int = 1) -> str:
    """A queued mail claimed ``workers`` times (by workers that all died), the
    last claim ``seconds_ago``; its task's id."""
    task_id = enqueue(email)
    for number in range(workers):
        DBTaskResult.objects.get(id=task_id).claim(f"dead-worker-{number}")
    DBTaskResult.objects.filter(id=task_id).update(
        started_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    return task_id


def row(task_id: str) -> DBTaskResult[Any, Any]:
    return DBTaskResult.objects.get(id=task_id)


def recover(*args: str) -> None:
    call_command("recover_stuck_tasks", *args)


def test_the_recover_role_runs_the_recovery(tmp_path: Path) -> None:
    task_id = claimed("nobody@example.com", seconds_ago=STUCK_AFTER + 1)
    call_command(*role_command(tmp_path, "recover", "recover_stuck_tasks"))
    assert row(task_id).status == "READY"


def test_a_stuck_task_is_queued_again_and_another_worker_runs_it(
    worker: QueueWorker, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = claimed("nobody@example.com", seconds_ago=STUCK_AFTER + 1)
    with caplog.at_level(logging.INFO, logger="arcana.mail"):
        recover()
    task = row(task_id)
    assert (task.status, task.worker_ids, task.finished_at) == ("READY", ["dead-worker-0"], None)
    lines = [r.getMessage() for r in caplog.records if "recover_stuck_tasks" in r.getMessage()]
    assert lines == [
        "recover_stuck_tasks: 1 task(s) queued again (running over 900 s: worker lost)",
        "recover_stuck_tasks: 0 task(s) failed (worker lost, 3 claims)",
    ]

    # Idempotent: nothing is stuck any more.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="arcana.mail"):
        recover()
    assert row(task_id).status == "READY"
    assert "recover_stuck_tasks: 0 task(s) queued again" in caplog.text

    worker.drain()  # the nobody-to-mail task succeeds without SMTP
    task = row(task_id)
    assert (task.status, task.worker_ids) == ("SUCCESSFUL", ["dead-worker-0", "test-worker"])


def test_running_fresh_ready_and_finished_tasks_are_left_alone(worker: QueueWorker) -> None:
    fresh = claimed("a@example.com", seconds_ago=STUCK_AFTER - 60)
    finished = enqueue("b@example.com")
    worker.drain()  # runs "finished" only: "fresh" is claimed
    day_ago = timezone.now() - timedelta(days=1)
    DBTaskResult.objects.filter(id=finished).update(started_at=day_ago)
    ready = enqueue("c@example.com")
    DBTaskResult.objects.filter(id=ready).update(enqueued_at=day_ago)
    before = {str(t.id): (t.status, t.started_at, t.worker_ids) for t in DBTaskResult.objects.all()}
    assert before[fresh][0] == "RUNNING"
    assert before[ready][0] == "READY"
    assert before[finished][0] == "SUCCESSFUL"
    recover()
    after = {str(t.id): (t.status, t.started_at, t.worker_ids) for t in DBTaskResult.objects.all()}
    assert after == before


@pytest.mark.parametrize(
    ("max_runs", "workers", "status"),
    [(3, 2, "READY"), (3, 3, "FAILED"), (3, 5, "FAILED"), (1, 1, "FAILED"), (2, 1, "READY")],
)
def test_a_task_that_lost_too_many_workers_fails(
    settings: Any, worker: QueueWorker, max_runs: int, workers: int, status: str
) -> None:
    settings.TASK_STUCK_MAX_RUNS = max_runs
    task_id = claimed("nobody@example.com", seconds_ago=STUCK_AFTER * 2, workers=workers)
    recover()
    task = row(task_id)
    assert task.status == status
    assert len(task.worker_ids) == workers
    if status == "READY":
        assert task.finished_at is None
        return
    assert task.finished_at is not None
    assert timezone.now() - task.finished_at < timedelta(minutes=1)
    (error,) = task.task_result.errors
    assert error.exception_class_path == "users.tasks.WorkerLost"
    assert "worker lost" in error.traceback
    worker.drain()
    assert row(task_id).status == "FAILED"  # nothing runs it again


def test_the_threshold_is_a_setting(settings: Any) -> None:
    settings.TASK_STUCK_AFTER_SECONDS = 60
    task_id = claimed("nobody@example.com", seconds_ago=61)
    untouched = claimed("other@example.com", seconds_ago=30)
    recover()
    assert (row(task_id).status, row(untouched).status) == ("READY", "RUNNING")


def test_a_dry_run_counts_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    again = claimed("a@example.com", seconds_ago=STUCK_AFTER + 1)
    spent = claimed("b@example.com", seconds_ago=STUCK_AFTER + 1, workers=3)
    with caplog.at_level(logging.INFO, logger="arcana.mail"):
        recover("--dry-run")
    assert (row(again).status, row(spent).status) == ("RUNNING", "RUNNING")
    assert "1 task(s) would be queued again" in caplog.text
    assert "1 task(s) would be failed" in caplog.text


@pytest.mark.parametrize("name", ["TASK_STUCK_AFTER_SECONDS", "TASK_STUCK_MAX_RUNS"])
@pytest.mark.parametrize("value", [0, -5, "3"])
def test_bad_settings_are_refused_clearly(settings: Any, name: str, value: object) -> None:
    task_id = claimed("nobody@example.com", seconds_ago=STUCK_AFTER * 10, workers=3)
    setattr(settings, name, value)
    with pytest.raises(CommandError, match=f"{name} must be a whole number, 1 or more"):
        recover()
    assert row(task_id).status == "RUNNING"


@contextmanager
def before_the_first_update(meanwhile: Callable[[], None]) -> Iterator[None]:
    """Run ``meanwhile`` (another process's writes) just before the first UPDATE
    of the task table that the code under the block sends: the moment a
    read-then-write recovery would be acting on what it read."""
    table = DBTaskResult._meta.db_table
    fired = False

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
        nonlocal fired
        if not fired and sql.lstrip().upper().startswith("UPDATE") and table in sql:
            fired = True
            meanwhile()
        return execute(sql, params, many, ctx)

    with connection.execute_wrapper(wrapper):
        yield
    assert fired, "the recovery sent no UPDATE"


def test_a_task_claimed_again_meanwhile_is_not_clobbered() -> None:
    """Another recovery queued the stuck task again and a live worker claimed
    it, between this run's look and its write: it stays the live worker's."""
    task_id = claimed("nobody@example.com", seconds_ago=STUCK_AFTER + 1)

    def requeued_and_claimed() -> None:
        DBTaskResult.objects.filter(id=task_id).update(status="READY")
        row(task_id).claim("live-worker")

    with before_the_first_update(requeued_and_claimed):
        recover()
    task = row(task_id)
    assert (task.status, task.worker_ids) == ("RUNNING", ["dead-worker-0", "live-worker"])
    assert timezone.now() - task.started_at < timedelta(minutes=1)


def test_a_task_finished_meanwhile_stays_finished() -> None:
    """A worker that was slow, not dead, finishes between this run's look and its write."""
    task_id = claimed("nobody@example.com", seconds_ago=STUCK_AFTER + 1, workers=3)

    with before_the_first_update(lambda: row(task_id).set_successful(False)):
        recover()
    task = row(task_id)
    assert (task.status, task.exception_class_path) == ("SUCCESSFUL", "")
