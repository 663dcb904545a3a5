"""The mail queue: django-tasks, stored in the database of whoever owns the
users (the repository tier in layered mode, the users service in
microservices), run by the worker (``manage.py db_worker``).

Only ``users.repository`` enqueues, once the transaction of the write that
calls for the mail has committed (``mail_enqueue``), so a rolled-back change
mails nobody and a request never waits on an SMTP server. The task asks the
service for the mail (``users.service.account_mail_send``), which reads the
user as they are *now*: a link is made when it is sent, not when it was asked
for.

A server that is down, slow or refusing (any ``OSError`` or
``SMTPException``) sends nothing, and the task enqueues itself again
``MAIL_RETRY_SECONDS`` later, doubling each time, ``MAIL_MAX_ATTEMPTS`` times
in all; the attempt that the server accepts is the one mail that goes out.

A worker that dies mid-task (killed, evicted, out of memory) leaves its task
RUNNING for good: ``stuck_tasks_recover`` (``manage.py recover_stuck_tasks``)
puts such a task back in the queue, or fails it once too many workers were
lost on it.
"""

import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Func, IntegerField
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone
from django_tasks import task
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

import users

logger = logging.getLogger("arcana.mail")


def retry_delay(attempt: int) -> timedelta:
    """How long after failed attempt number ``attempt`` (0-based) to try again."""
    return timedelta(seconds=settings.MAIL_RETRY_SECONDS * 2**attempt)


@task()
def account_mail(kind: str, email: str = "", user_id: str = "", attempt: int = 0) -> bool:
    """Send one account mail; True when one went out (nobody to mail is False)."""
    try:
        return users.service.account_mail_send(kind=kind, email=email, user_id=user_id)
    except (OSError, smtplib.SMTPException) as exc:
        if (
            attempt + 1 >= settings.MAIL_MAX_ATTEMPTS
            or not account_mail.get_backend().supports_defer
        ):
            logger.error("mail %s: giving up after %d attempts: %s", kind, attempt + 1, exc)
            raise
        delay = retry_delay(attempt)
        logger.warning(
            "mail %s: attempt %d failed (%s); again in %s", kind, attempt + 1, exc, delay
        )
        account_mail.using(run_after=timezone.now() + delay).enqueue(
            kind=kind, email=email, user_id=user_id, attempt=attempt + 1
        )
        return False


class WorkerLost(Exception):
    """Why a task failed that was claimed ``TASK_STUCK_MAX_RUNS`` times by workers
    that never finished it (its ``exception_class_path``)."""


class _Runs(Func):
    """How many times a task was claimed: django-tasks-db appends the worker's id
    to ``worker_ids`` at every claim, so the run counter is that array's length."""

    function = "JSON_ARRAY_LENGTH"  # SQLite
    output_field = IntegerField()

    def as_mysql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, function="JSON_LENGTH", **extra)

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


@dataclass(frozen=True)
class Recovered:
    requeued: int
    failed: int


def stuck_tasks_recover(
    *, stuck_after: timedelta, max_runs: int, dry_run: bool = False
) -> Recovered:
    """Queue again every task still RUNNING ``stuck_after`` after its claim, or fail
    it (``WorkerLost``) once ``max_runs`` workers have claimed it.

    One conditional UPDATE each, on the state and the claim's time, never a read
    then a write: a task finished meanwhile is no longer RUNNING, and one a
    worker claimed again meanwhile has a fresh ``started_at``, so neither is
    touched. Safe beside the workers and beside another run of itself; running
    it twice changes nothing more.
    """
    now = timezone.now()
    stuck = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, started_at__lt=now - stuck_after
    )
    spent = stuck.filter(GreaterThanOrEqual(_Runs("worker_ids"), max_runs))
    again = stuck.filter(LessThan(_Runs("worker_ids"), max_runs))
    if dry_run:
        return Recovered(requeued=again.count(), failed=spent.count())
    reason = (
        f"worker lost: still running {stuck_after.total_seconds():g} s after its claim, "
        f"{max_runs} times; not retried"
    )
    failed = spent.update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        traceback=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}: {reason}\n",
    )
    return Recovered(requeued=again.update(status=TaskResultStatus.READY), failed=failed)
