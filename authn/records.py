"""Frozen records that cross authn's boundaries (with ``users.records``)."""

from dataclasses import dataclass
from datetime import datetime

from users.records import Actor, UserRecord


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: str
    refresh: str
    user: UserRecord


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The outcome of checking an access token: the user as the database has it."""

    user: UserRecord
    session_id: str | None

    @property
    def actor(self) -> Actor:
        return Actor(id=self.user.id, roles=self.user.roles, is_superuser=self.user.is_superuser)


@dataclass(frozen=True, slots=True)
class Session:
    """One live login of a user: a refresh-token family (its id is the family's
    first ``jti``, stable across rotations), when it began, when its current
    refresh token expires, and whether the caller's access token belongs to it."""

    id: str
    created_at: datetime
    expires_at: datetime
    current: bool
