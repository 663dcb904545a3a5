"""Plain, frozen records that cross the users app's boundaries.

They hold only primitives (and datetimes) so they pickle into the cache and
serialise onto any transport; the model never leaves the repository layer
(``users.repository`` is the one place that turns a model into a record).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from users.models import Roles

# The account mails (``users.repository.mail_enqueue``'s ``kind``).
MAIL_PASSWORD_RESET = "password_reset"  # noqa: S105 - a mail kind, not a secret
MAIL_EMAIL_VERIFICATION = "email_verification"
MAIL_KINDS = (MAIL_PASSWORD_RESET, MAIL_EMAIL_VERIFICATION)

# What a controller announces for the user its call is about to read
# (``arcana.core.context.read_ahead_announce``), so that ``users.repository``
# reads that record in the round trip that reads the caller.
READ_AHEAD_USER = "user"


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    name: str
    email: str
    roles: tuple[str, ...]
    sync_status: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    # Not part of the API's user: it decides who may change whom (users.services).
    is_superuser: bool = False
    email_verified: bool = False
    # Not part of the API's user either: the address an email change waits to
    # have confirmed ("" when none).
    pending_email: str = ""

    @property
    def is_admin(self) -> bool:
        return Roles.ADMIN in self.roles


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """A user with their password hash, for the service that checks a password.

    Crosses the service <-> repository boundary only: services hand callers the
    ``user`` alone, so no hash reaches a controller, a client or a log line
    (hence no ``repr`` of it either).
    """

    user: UserRecord
    password_hash: str = field(repr=False)


class UserChanges(TypedDict, total=False):
    """The plain fields of a user a service may change (roles go apart).

    A key that is present is a value to store; an absent key is left as is.
    """

    name: str
    email: str
    is_active: bool
    sync_status: str
    email_verified: bool
    pending_email: str


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: the authenticated caller, as services see it."""

    id: str
    roles: tuple[str, ...]
    is_superuser: bool = False

    @property
    def is_admin(self) -> bool:
        return Roles.ADMIN in self.roles

    def may_access(self, user_id: str) -> bool:
        return self.is_admin or self.id == user_id


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of a user list.

    By offset (``page`` given): ``page`` and ``total`` are set; ``total`` is
    exact up to ``USER_LIST_EXACT_TOTAL_UP_TO`` matches and beyond that a
    count cached per filter set, flagged ``total_is_estimate``. By cursor:
    ``page`` and ``total`` are None (no count is made). ``has_more``: rows
    follow the last one (the repository's answer); ``next_cursor``: the
    signed position after the last one, for the next page (the service's).
    """

    users: list[UserRecord]
    page: int | None
    size: int
    total: int | None
    has_more: bool = False
    next_cursor: str | None = None
    total_is_estimate: bool = False
