"""Domain errors shared by every app.

Services and repositories raise these; they know nothing of HTTP or gRPC.
Each error has a ``kind`` (what went wrong, transport-neutral) and a stable
machine ``code``. ``arcana.errors`` is the one place that turns a kind into an
HTTP status or a gRPC status code.
"""

import logging
from typing import ClassVar

from django.db import InterfaceError, OperationalError

logger = logging.getLogger("arcana.errors")


class ApplicationError(Exception):
    """Base of every error a client may see. ``message`` is safe to show."""

    kind: ClassVar[str] = "internal"
    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "Something went wrong."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(ApplicationError):
    """Input broke a rule; ``errors`` maps each field to its messages."""

    kind = "invalid"
    code = "invalid"
    default_message = "Invalid input."

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        self.errors = errors
        super().__init__(message)


class NotFound(ApplicationError):
    kind = "not_found"
    code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    kind = "conflict"
    code = "conflict"
    default_message = "Conflict."


class Unauthenticated(ApplicationError):
    kind = "unauthenticated"
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are not valid."


class Forbidden(ApplicationError):
    kind = "forbidden"
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class Throttled(ApplicationError):
    kind = "throttled"
    code = "throttled"
    default_message = "Too many requests."

    def __init__(self, wait: float | None = None, message: str | None = None) -> None:
        self.wait = wait
        super().__init__(message)


class Unavailable(ApplicationError):
    kind = "unavailable"
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable; try again shortly."


# Exceptions that mean "the database cannot be reached right now".
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)


def database_error_as_domain(exc: Exception) -> Unavailable:
    """A database outage as the domain error every transport answers (503,
    ``UNAVAILABLE``, and the same failure across an internal hop)."""
    logger.error("database unavailable: %s", exc.__class__.__name__)
    return Unavailable("The database is unavailable; try again shortly.")
