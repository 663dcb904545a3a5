"""A real SMTP server (aiosmtpd) on loopback, and the real queue and worker.

The server can be stopped and started again on the same port, to play an SMTP
server that is down and comes back. The worker is django-tasks-db's own
``Worker`` (what ``manage.py db_worker`` runs) against the test database.
"""

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from tests.entrypoint import entrypoint, make_fake_bin
from users import repository
from users.records import MAIL_PASSWORD_RESET

# This suite's side ports (one machine is shared by many runs).
PORTS = range(19100, 19200)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@dataclass
class Inbox:
    """What the SMTP server accepted: one parsed message per DATA."""

    messages: list[ParsedMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, ParsedMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 2
    try:
        yield server
    finally:
        server.stop()


class QueueWorker:
    """django-tasks-db's ``Worker``, as ``manage.py db_worker --batch`` runs
    it: every task that is due, then return. Run in the test's thread, between
    requests, so the suite is deterministic on SQLite too (whose shared
    in-memory test database locks whole tables across threads; the deployed
    worker is a process of its own, see the Procfiles)."""

    def drain(self) -> None:
        Worker(
            queue_names=["default"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id="test-worker",
            excluded_queue_names=[],
        ).run()


def role_command(tmp_path: Path, role: str, command: str, *args: str, **env: str) -> list[str]:
    """What ``docker/entrypoint.sh ROLE ARGS`` runs (``command``), as ``manage.py``'s
    arguments."""
    status, started, stderr = entrypoint(make_fake_bin(tmp_path / "bin"), role, *args, **env)
    assert status == 0, stderr
    assert started["argv"][:2] == ["manage.py", command]
    argv: list[str] = started["argv"][1:]
    return argv


def enqueue(email: str) -> str:
    """Queue a reset mail the way the API does (outside a transaction: at once);
    the id of its task."""
    before = set(DBTaskResult.objects.values_list("id", flat=True))
    repository.mail_enqueue(kind=MAIL_PASSWORD_RESET, email=email)
    (new,) = set(DBTaskResult.objects.values_list("id", flat=True)) - before
    return str(new)


@pytest.fixture
def queue(settings: Any) -> None:
    """The production queue: tasks stored in the database, retried soon."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.MAIL_RETRY_SECONDS = 0.3


@pytest.fixture
def worker(queue: None) -> QueueWorker:
    return QueueWorker()
