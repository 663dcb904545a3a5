"""``manage.py flushexpiredtokens``: delete the rows of expired refresh tokens.

The name of simplejwt's command for its token_blacklist app, which authn's own
token table replaces (authn/models.py). Run it daily (a cron job, or a
Kubernetes CronJob) where the token table lives.
"""

from typing import Any

from django.core.management.base import BaseCommand

import authn


class Command(BaseCommand):
    help = "Delete expired refresh tokens (they can no longer be used or replayed)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = authn.service.tokens_flush_expired()
        self.stdout.write(f"Deleted {deleted} expired refresh token(s).")
