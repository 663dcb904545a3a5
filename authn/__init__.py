"""The authn app.

Its two boundaries are attributes of this package, each typed by a Protocol
of ``authn.interfaces`` and chosen once per process (``arcana.core.delegation``):

- ``authn.service`` (``AuthServiceInterface``): what controllers call;
- ``authn.repo`` (``AuthRepositoryInterface``): what ``authn.services`` calls.

In monolithic mode they are the modules ``authn.services`` and
``authn.repository`` themselves. Look them up at call time
(``authn.service.auth_login(...)``); do not bind them at import.
"""

from typing import TYPE_CHECKING

from arcana.core.delegation import Boundaries, Remote

if TYPE_CHECKING:
    from authn.interfaces import AuthRepositoryInterface, AuthServiceInterface

    service: AuthServiceInterface
    repo: AuthRepositoryInterface


def _local_service() -> "AuthServiceInterface":
    from authn import services

    return services  # mypy checks here that the module satisfies the Protocol


def _local_repo() -> "AuthRepositoryInterface":
    from authn import repository

    return repository  # and here


def _service_interface() -> type:
    from authn.interfaces import AuthServiceInterface

    return AuthServiceInterface


def _repo_interface() -> type:
    from authn.interfaces import AuthRepositoryInterface

    return AuthRepositoryInterface


_boundaries = Boundaries(
    globals(),
    "authn",
    {"service": _local_service, "repo": _local_repo},
    # In layered mode the controller tier's ``service`` and the service tier's
    # ``repo`` are internal gRPC clients; only the reads may be tried twice.
    remote={
        "service": Remote(interface=_service_interface, home="service", reads=("sessions_list",)),
        "repo": Remote(interface=_repo_interface, reads=("refresh_token_revoked", "sessions_live")),
    },
)


def bind() -> None:
    """Called by ``AuthnConfig.ready``."""
    _boundaries.bind()


def __getattr__(name: str) -> object:
    return _boundaries.resolve(name)
