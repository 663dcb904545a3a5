"""Frozen records that cross authn's boundaries (with ``users.records``)."""

from dataclasses import dataclass

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
