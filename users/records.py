"""Plain, frozen records that cross the service boundary.

They hold only primitives (and datetimes) so they pickle into the cache and
serialise onto any transport; the model never leaves the repository layer.
"""

from dataclasses import dataclass
from datetime import datetime

from users.models import Roles, User


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

    @property
    def is_admin(self) -> bool:
        return Roles.ADMIN in self.roles

    @classmethod
    def from_model(cls, user: User) -> "UserRecord":
        """The one model -> record converter (expects roles prefetched)."""
        return cls(
            id=str(user.id),
            name=user.name,
            email=user.email,
            roles=tuple(user.role_names),
            sync_status=user.sync_status,
            is_active=user.is_active,
            created_at=user.created_at,
            updated_at=user.updated_at,
            is_superuser=user.is_superuser,
        )


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
    users: list[UserRecord]
    page: int
    size: int
    total: int
