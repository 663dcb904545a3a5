"""The account mails through the real queue, the real worker and a real SMTP
server: read the message the server received, follow its link."""

import socket
import time
from typing import Any

import pytest
from django.conf import settings
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD
from tests.mail import link_of
from tests.mail.conftest import QueueWorker, SmtpServer
from tests.support.waiting import wait_for
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NEW_PASSWORD = "a long and unusual passphrase 42"
# A request that queues a mail does one more insert; far below any SMTP timeout.
QUICK = 1.0


def _post(path: str, body: dict[str, Any]) -> Any:
    return APIClient().post(f"/api/v1/auth/{path}", body, format="json")


def test_a_password_reset_by_real_mail(smtp: SmtpServer, worker: QueueWorker, user: User) -> None:
    refresh = _post("login", {"email": user.email, "password": DEFAULT_PASSWORD}).json()["refresh"]
    unknown = _post("password-reset", {"email": "nobody@example.com"})
    known = _post("password-reset", {"email": user.email})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202

    assert smtp.inbox.messages == []  # the requests only queued the mails
    worker.drain()
    wait_for(lambda: len(smtp.inbox.messages) == 1, timeout=10)
    (message,) = smtp.inbox.messages
    assert message["To"] == user.email
    assert message["From"] == settings.DEFAULT_FROM_EMAIL
    assert message["Subject"] == "Reset your Arcana Cloud password"
    body = message.get_content()
    uid, token = link_of(body, settings.PASSWORD_RESET_URL)

    confirm = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    assert _post("password-reset/confirm", confirm).status_code == 204
    used = _post("password-reset/confirm", confirm)
    assert (used.status_code, used.json()["code"]) == (400, "password_reset_link_invalid")
    assert _post("login", {"email": user.email, "password": NEW_PASSWORD}).status_code == 200
    assert _post("refresh", {"refresh": refresh}).status_code == 401  # the old session ended
    # The unknown address was looked up by the worker, and mailed nobody.
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert sorted(map(bool, DBTaskResult.objects.values_list("return_value", flat=True))) == [
        False,
        True,
    ]
    assert len(smtp.inbox.messages) == 1


def test_a_verification_by_real_mail(smtp: SmtpServer, worker: QueueWorker) -> None:
    body = {"name": "Vera Mail", "email": "vera@example.com", "password": NEW_PASSWORD}
    assert _post("register", body).status_code == 201
    worker.drain()
    wait_for(lambda: len(smtp.inbox.messages) == 1, timeout=10)
    (message,) = smtp.inbox.messages
    assert message["To"] == "vera@example.com"
    uid, token = link_of(message.get_content(), settings.EMAIL_VERIFICATION_URL)
    assert _post("verify-email", {"uid": uid, "token": token}).status_code == 204
    assert User.objects.get(email="vera@example.com").email_verified


def test_smtp_down_then_back(smtp: SmtpServer, worker: QueueWorker, user: User) -> None:
    """The request neither fails nor waits; the mail goes out once, when the
    server is back."""
    smtp.stop()
    started = time.monotonic()
    response = _post("password-reset", {"email": user.email})
    took = time.monotonic() - started
    assert response.status_code == 202
    assert took < QUICK, f"the request waited {took:.2f}s"

    # The worker tries, fails (connection refused) and queues the next
    # attempt for later: not due yet, so a second run sends nothing either.
    worker.drain()
    worker.drain()
    assert DBTaskResult.objects.count() == 2
    assert smtp.inbox.messages == []
    smtp.start()
    time.sleep(settings.MAIL_RETRY_SECONDS)
    worker.drain()
    wait_for(lambda: len(smtp.inbox.messages) == 1, timeout=10)
    # Nothing is left to send it again: every attempt has finished, once.
    time.sleep(3 * settings.MAIL_RETRY_SECONDS)
    worker.drain()
    assert len(smtp.inbox.messages) == 1
    assert smtp.inbox.messages[0]["To"] == user.email
    tasks = DBTaskResult.objects.order_by("enqueued_at")
    assert [task.args_kwargs["kwargs"].get("attempt", 0) for task in tasks] == [0, 1]
    assert [(task.status, task.return_value) for task in tasks] == [
        ("SUCCESSFUL", False),
        ("SUCCESSFUL", True),
    ]
    # The link in the mail that finally went out works.
    uid, token = link_of(smtp.inbox.messages[0].get_content(), settings.PASSWORD_RESET_URL)
    confirm = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    assert _post("password-reset/confirm", confirm).status_code == 204


def test_a_rolled_back_change_mails_nobody(queue: None, user: User) -> None:
    """Queued on commit: a registration that fails queues nothing."""
    body = {"name": "Dup", "email": user.email, "password": NEW_PASSWORD}
    assert _post("register", body).status_code == 409
    assert not DBTaskResult.objects.exists()
    assert _post("password-reset", {"email": user.email}).status_code == 202
    assert DBTaskResult.objects.count() == 1


def test_a_silent_smtp_server_costs_the_worker_its_timeout_not_the_request(
    smtp: SmtpServer, worker: QueueWorker, user: User, settings: Any
) -> None:
    """A server that takes the connection and never answers: the request is
    as quick as ever; the worker gives up after EMAIL_TIMEOUT and queues the
    next attempt."""
    smtp.stop()
    settings.EMAIL_TIMEOUT = 1
    with socket.create_server(("127.0.0.1", smtp.port)) as silent:
        started = time.monotonic()
        assert _post("password-reset", {"email": user.email}).status_code == 202
        assert time.monotonic() - started < QUICK
        started = time.monotonic()
        worker.drain()
        waited = time.monotonic() - started
        silent.accept()[0].close()
    assert 1 <= waited < 5
    first, retry = DBTaskResult.objects.order_by("enqueued_at")
    assert (first.status, first.return_value) == ("SUCCESSFUL", False)
    assert retry.status == "READY"  # due after MAIL_RETRY_SECONDS
    assert retry.args_kwargs["kwargs"]["attempt"] == 1
