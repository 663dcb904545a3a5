"""``recover_stuck_tasks``: the mail queue's tasks whose worker died mid-run go
back to the queue (``users.tasks.stuck_tasks_recover``), up to
``TASK_STUCK_MAX_RUNS`` claims; then they fail, "worker lost".

Run it every few minutes where the worker runs, with its settings
(docker/entrypoint.sh recover; Kubernetes: CronJob recover-tasks).
"""

import logging
from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from users.tasks import stuck_tasks_recover

logger = logging.getLogger("arcana.mail")


def _at_least_one(name: str) -> int:
    value = getattr(settings, name)
    if not isinstance(value, int) or value < 1:
        raise CommandError(f"{name} must be a whole number, 1 or more (got {value!r})")
    return value


class Command(BaseCommand):
    help = (
        "Queue again the tasks left running by a lost worker (claimed over "
        "TASK_STUCK_AFTER_SECONDS ago); fail those claimed TASK_STUCK_MAX_RUNS times."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="only count what would be recovered"
        )

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        stuck_after = _at_least_one("TASK_STUCK_AFTER_SECONDS")
        max_runs = _at_least_one("TASK_STUCK_MAX_RUNS")
        recovered = stuck_tasks_recover(
            stuck_after=timedelta(seconds=stuck_after), max_runs=max_runs, dry_run=dry_run
        )
        would = "would be " if dry_run else ""
        logger.log(
            logging.WARNING if recovered.requeued else logging.INFO,
            "recover_stuck_tasks: %d task(s) %squeued again (running over %d s: worker lost)",
            recovered.requeued,
            would,
            stuck_after,
        )
        logger.log(
            logging.ERROR if recovered.failed else logging.INFO,
            "recover_stuck_tasks: %d task(s) %sfailed (worker lost, %d claims)",
            recovered.failed,
            would,
            max_runs,
        )
