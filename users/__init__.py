"""The users app.

Its two boundaries are attributes of this package, each typed by a Protocol
of ``users.interfaces`` and chosen once per process (``arcana.core.delegation``):

- ``users.service`` (``UserServiceInterface``): what controllers, the admin's
  actions and other apps (authn) call;
- ``users.repo`` (``UserRepositoryInterface``): what ``users.services`` calls.

In monolithic mode they are the modules ``users.services`` and
``users.repository`` themselves. Look them up at call time
(``users.service.user_get(...)``); do not bind them at import.
"""

from typing import TYPE_CHECKING

from arcana.core.delegation import Boundaries, Remote

if TYPE_CHECKING:
    from collections.abc import Callable

    from users.interfaces import UserRepositoryInterface, UserServiceInterface
    from users.records import UserRecord

    service: UserServiceInterface
    repo: UserRepositoryInterface


def _local_service() -> "UserServiceInterface":
    from users import services

    return services  # mypy checks here that the module satisfies the Protocol


def _local_repo() -> "UserRepositoryInterface":
    from users import repository

    return repository  # and here


def _cached_record() -> "Callable[..., UserRecord | None]":
    from users.repository import user_cached

    return user_cached


def _service_interface() -> type:
    from users.interfaces import UserServiceInterface

    return UserServiceInterface


def _repo_interface() -> type:
    from users.interfaces import UserRepositoryInterface

    return UserRepositoryInterface


_boundaries = Boundaries(
    globals(),
    "users",
    {"service": _local_service, "repo": _local_repo},
    # In layered mode the controller tier's ``service`` and the service tier's
    # ``repo`` are internal gRPC clients; ``reads`` change nothing, so a call
    # that met an unavailable replica may be tried once more on another.
    # ``cached``: a user record the repository keeps in the shared cache
    # answers the caller lookup (every authenticated request) and user_get
    # without a hop (arcana.core.delegation.front).
    remote={
        "service": Remote(
            interface=_service_interface,
            home="service",
            reads=(
                "user_get",
                "user_list",
                "user_record",
                "password_check",
                "user_password_matches",
            ),
            cached={"user_record": _cached_record},
        ),
        "repo": Remote(
            interface=_repo_interface,
            reads=(
                "user_get",
                "user_credentials",
                "user_credentials_of",
                "user_password_hash",
                "user_list",
            ),
            cached={"user_get": _cached_record},
        ),
    },
)


def bind() -> None:
    """Called by ``UsersConfig.ready``."""
    _boundaries.bind()


def __getattr__(name: str) -> object:
    return _boundaries.resolve(name)
