"""The nightly prune of the mail queue (docker/entrypoint.sh prune, the
Kubernetes CronJob prune-tasks) on the real queue: mails queued through
``users.repository.mail_enqueue``, run by the real worker (one sent, one given
up), aged, then pruned by the very command line the entry point's role runs."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.mail.conftest import QueueWorker, enqueue, free_port, role_command
from users.models import User

# The worker closes its database connection as the deployed one does: no
# test transaction to wrap it in (as in test_smtp.py).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def finished_days_ago(task_id: str, days: float) -> None:
    stamp = timezone.now() - timedelta(days=days)
    DBTaskResult.objects.filter(id=task_id).update(enqueued_at=stamp, finished_at=stamp)


@pytest.fixture
def tasks(settings: Any, worker: QueueWorker, user: User) -> dict[str, str]:
    """Four tasks by name: sent 15 and 13 days ago, given up 15 days ago (the
    SMTP server refused every attempt), and one still waiting, queued 30 days
    ago (its run_after in the future: a retry not yet due)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 2
    settings.MAIL_MAX_ATTEMPTS = 1
    # Unknown addresses: the worker finds nobody and succeeds without SMTP.
    ids = {
        "old_sent": enqueue("nobody-1@example.com"),
        "recent_sent": enqueue("nobody-2@example.com"),
        "old_given_up": enqueue(user.email),
    }
    worker.drain()
    statuses = {str(pk): status for pk, status in DBTaskResult.objects.values_list("id", "status")}
    assert {name: statuses[ids[name]] for name in ids} == {
        "old_sent": "SUCCESSFUL",
        "recent_sent": "SUCCESSFUL",
        "old_given_up": "FAILED",
    }
    ids["waiting"] = enqueue(user.email)
    DBTaskResult.objects.filter(id=ids["waiting"]).update(
        enqueued_at=timezone.now() - timedelta(days=30),
        run_after=timezone.now() + timedelta(hours=1),
    )
    finished_days_ago(ids["old_sent"], 15)
    finished_days_ago(ids["recent_sent"], 13)
    finished_days_ago(ids["old_given_up"], 15)
    assert DBTaskResult.objects.get(id=ids["waiting"]).status == "READY"
    return ids


@pytest.mark.parametrize(
    ("env", "args", "kept"),
    [
        # The default: 14 days for every finished task; unfinished ones stay, however old.
        ({}, (), {"recent_sent", "waiting"}),
        ({"TASK_RESULTS_KEEP_DAYS": "14"}, (), {"recent_sent", "waiting"}),
        ({"TASK_RESULTS_KEEP_DAYS": "10"}, (), {"waiting"}),
        # ARGS reach the command: failed tasks kept longer, to look into.
        (
            {"TASK_RESULTS_KEEP_DAYS": "0"},
            ("--failed-min-age-days", "30"),
            {"old_given_up", "waiting"},
        ),
        ({}, ("--dry-run",), {"old_sent", "recent_sent", "old_given_up", "waiting"}),
    ],
    ids=["default", "14-days", "10-days", "failed-kept-longer", "dry-run"],
)
def test_the_prune_role_deletes_old_finished_tasks_only(
    tmp_path: Path,
    tasks: dict[str, str],
    env: dict[str, str],
    args: tuple[str, ...],
    kept: set[str],
) -> None:
    call_command(*role_command(tmp_path, "prune", "prune_db_task_results", *args, **env))
    remaining = {str(task_id) for task_id in DBTaskResult.objects.values_list("id", flat=True)}
    assert {name for name, task_id in tasks.items() if task_id in remaining} == kept
    assert remaining <= set(tasks.values())
