"""Who is calling, as the transports hand it to controllers.

The transports authenticate without knowing how: REST through DRF's
``DEFAULT_AUTHENTICATION_CLASSES``, gRPC's ``AuthInterceptor`` through the
function ``settings.ARCANA_AUTHENTICATOR`` names. Both see the result only as
a :class:`Caller`. Controllers ask for the concrete types their services take
(``arcana.core.rest.actor_of(request, Actor)``,
``arcana.core.grpc.current_actor(Actor)``), and :func:`as_kind` checks them,
so the apps keep their own records and the core names none of them.
"""

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

T = TypeVar("T")


class Identity(Protocol):
    """The services' view of who is asking (``users.records.Actor``)."""

    @property
    def id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


class Caller(Protocol):
    """What an authenticator returns for valid credentials
    (``authn.services.Authenticated``)."""

    @property
    def actor(self) -> Identity: ...

    @property
    def session_id(self) -> str | None: ...


class Authenticator(Protocol):
    """``settings.ARCANA_AUTHENTICATOR``: the caller behind an ``authorization``
    value (``None`` when none was sent). Refuses with a domain error
    (``arcana.core.exceptions.Unauthenticated`` or a subclass)."""

    def __call__(self, *, authorization: str | None) -> Caller: ...


def authenticator_load() -> Authenticator:
    """The function ``settings.ARCANA_AUTHENTICATOR`` names, imported.

    Called once per gRPC server, when it is built, so a wrong path stops the
    server from starting rather than failing every call.
    """
    path: str = settings.ARCANA_AUTHENTICATOR
    try:
        found: Authenticator = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"ARCANA_AUTHENTICATOR={path!r}: {exc}") from None
    if not callable(found):
        raise ImproperlyConfigured(f"ARCANA_AUTHENTICATOR={path!r} is not callable.")
    return found


def as_kind(value: object, kind: type[T]) -> T:
    """``value``, which must be a ``kind``: what a controller's services take.

    Anything else means the configured authenticator returns types this
    controller was not written for: a deployment error, not the client's.
    """
    if not isinstance(value, kind):
        raise TypeError(
            f"the caller's {type(value).__qualname__} is not the {kind.__qualname__} this "
            "controller takes; check ARCANA_AUTHENTICATOR and DEFAULT_AUTHENTICATION_CLASSES"
        )
    return value


@dataclass(frozen=True)
class Principal:
    """``request.user`` for API calls: the caller as the database has it now."""

    auth: Caller
    is_authenticated: bool = field(default=True, init=False)
    is_anonymous: bool = field(default=False, init=False)

    @property
    def pk(self) -> str:
        return self.auth.actor.id

    @property
    def id(self) -> str:
        return self.auth.actor.id

    @property
    def actor(self) -> Identity:
        return self.auth.actor

    @property
    def session_id(self) -> str | None:
        return self.auth.session_id
