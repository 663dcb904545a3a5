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
"""

import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import task

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
