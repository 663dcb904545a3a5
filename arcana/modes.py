"""Deployment mode and tier, read once from the environment at start-up.

``ARCANA_MODE`` says how the layers are deployed (monolithic: one process type
does everything; layered: controller, service and repository tiers connected
by internal gRPC; microservices: a users service and an auth service, each
with its own database, calling each other's internal gRPC). ``ARCANA_TIER``
says which tier this process is in layered mode, ``ARCANA_SERVICE`` which
service in microservices mode, and the ``*_ADDR`` variables where the tier or
service it calls listens. Anything missing, unknown or malformed stops the
process with one line naming the variable (:class:`ImproperlyConfigured`
raised while the settings load), so a half-configured tier never serves.

This module reads no Django settings: the settings call :func:`deployment_from_env`
and expose the result as ``settings.ARCANA_DEPLOYMENT``.
"""

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured


class Mode(StrEnum):
    MONOLITHIC = "monolithic"
    LAYERED = "layered"
    MICROSERVICES = "microservices"


class Tier(StrEnum):
    CONTROLLER = "controller"
    SERVICE = "service"
    REPOSITORY = "repository"


class Service(StrEnum):
    USERS = "users"
    AUTH = "auth"


# The app each microservice owns: its rules and its data (``Deployment.owns``).
APP_OF_SERVICE: dict[Service, str] = {Service.USERS: "users", Service.AUTH: "authn"}
SERVICE_OF_APP: dict[str, Service] = {app: service for service, app in APP_OF_SERVICE.items()}

# The peer each tier calls, by the variable that says where it listens.
SERVICE_ADDR = "ARCANA_SERVICE_ADDR"
REPOSITORY_ADDR = "ARCANA_REPOSITORY_ADDR"
_PEER_OF: dict[Tier, str] = {Tier.CONTROLLER: SERVICE_ADDR, Tier.SERVICE: REPOSITORY_ADDR}
# Each microservice calls the other one's internal server: auth asks users
# for credentials checks, active users and new accounts; users asks auth to
# end a user's sessions after a password change (and checks the admin's logins).
USERS_ADDR = "ARCANA_USERS_ADDR"
AUTH_ADDR = "ARCANA_AUTH_ADDR"
_PEER_OF_SERVICE: dict[Service, str] = {Service.USERS: AUTH_ADDR, Service.AUTH: USERS_ADDR}
_ADDR_FORMS = "host:port[,host:port...] or dns:///name:port"

DEFAULT_INTERNAL_DEADLINE = 2.0
E = TypeVar("E", bound=StrEnum)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Deployment:
    """How this process is deployed.

    ``service_targets`` / ``repository_targets`` are gRPC channel targets of
    the peer tier, each ``host:port`` (a static list, balanced per call by the
    caller) or a single ``dns:///name:port`` (resolved and balanced by gRPC);
    empty where this process does not call that tier. ``users_targets`` /
    ``auth_targets`` are the same for the other microservice's internal server.
    """

    mode: Mode
    tier: Tier | None = None
    service_targets: tuple[str, ...] = ()
    repository_targets: tuple[str, ...] = ()
    internal_deadline: float = DEFAULT_INTERNAL_DEADLINE
    internal_insecure: bool = False
    service: Service | None = None
    users_targets: tuple[str, ...] = ()
    auth_targets: tuple[str, ...] = ()

    @property
    def holds_database(self) -> bool:
        """Whether this process may open the database (it holds its credentials):
        every process but layered mode's controller and service tiers. A
        microservice holds its own database, with its own app's tables only."""
        return self.mode != Mode.LAYERED or self.tier == Tier.REPOSITORY

    @property
    def owned_app(self) -> str | None:
        """The app whose data and rules this microservice holds (None outside
        microservices mode, where every process runs every app)."""
        return None if self.service is None else APP_OF_SERVICE[self.service]

    def owns(self, app: str) -> bool:
        """Whether app ``app`` runs here: everywhere but in the other microservice."""
        return self.service is None or APP_OF_SERVICE[self.service] == app

    @property
    def name(self) -> str:
        """What this process is, for messages and the internal calls' metadata:
        its tier, its service, or its mode."""
        return str(self.tier or self.service or self.mode)

    def internal_targets(self, *, app: str, home: str) -> tuple[str, ...]:
        """Where a remote boundary of ``app`` whose home is tier ``home``
        (``"service"`` or ``"repository"``) is served: the tier below in
        layered mode, the service owning ``app`` in microservices mode."""
        if self.mode is Mode.MICROSERVICES:
            owner = SERVICE_OF_APP[app]
            return self.users_targets if owner is Service.USERS else self.auth_targets
        return self.service_targets if home == Tier.SERVICE else self.repository_targets


def _value(environ: Mapping[str, str], name: str) -> str:
    """The variable's value, stripped; an empty value counts as unset."""
    return environ.get(name, "").strip()


def _choice(environ: Mapping[str, str], name: str, kind: type[E]) -> E | None:
    raw = _value(environ, name)
    if not raw:
        return None
    try:
        return kind(raw.lower())
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ImproperlyConfigured(f"{name} must be one of {choices} (got {raw!r}).") from None


def _is_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if len(host) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in host.split("."))


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    if not sep or not _is_host(host) or not port.isascii() or not port.isdigit():
        return False
    return 0 < int(port) < 65536


def parse_targets(name: str, raw: str) -> tuple[str, ...]:
    """gRPC targets from ``host:port[,host:port...]`` or ``dns:///name:port``."""
    if raw.lower().startswith("dns:"):
        rest = raw[len("dns:") :]
        if not rest.startswith("///") or not _is_host_port(rest[3:]):
            raise ImproperlyConfigured(f"{name}: {raw!r} is not {_ADDR_FORMS}.")
        return (raw,)
    targets = tuple(part.strip() for part in raw.split(","))
    for target in targets:
        if not _is_host_port(target):
            raise ImproperlyConfigured(f"{name}: {target!r} is not {_ADDR_FORMS}.")
    return targets


def _deadline(environ: Mapping[str, str]) -> float:
    name = "ARCANA_INTERNAL_DEADLINE"
    raw = _value(environ, name)
    if not raw:
        return DEFAULT_INTERNAL_DEADLINE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ImproperlyConfigured(f"{name} must be a number of seconds above 0 (got {raw!r}).")
    return seconds


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = _value(environ, name).lower()
    if not raw or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    # django-environ would read an unknown word as false: refuse it instead.
    raise ImproperlyConfigured(f"{name} must be true or false (got {raw!r}).")


def deployment_from_env(environ: Mapping[str, str]) -> Deployment:
    """Parse and validate the deployment variables, or raise ``ImproperlyConfigured``
    with one line naming the variable at fault."""
    mode = _choice(environ, "ARCANA_MODE", Mode) or Mode.MONOLITHIC
    tier = _choice(environ, "ARCANA_TIER", Tier)
    service = _choice(environ, "ARCANA_SERVICE", Service)
    # Syntax first, wherever they are set: a typo is a typo even where unused.
    peers = {
        name: parse_targets(name, raw)
        for name in (SERVICE_ADDR, REPOSITORY_ADDR, USERS_ADDR, AUTH_ADDR)
        if (raw := _value(environ, name))
    }
    deadline = _deadline(environ)
    insecure = _flag(environ, "ARCANA_INTERNAL_INSECURE")
    if tier is not None and mode is not Mode.LAYERED:
        raise ImproperlyConfigured(
            f"ARCANA_TIER is only for ARCANA_MODE=layered (the mode is {mode})."
        )
    if service is not None and mode is not Mode.MICROSERVICES:
        raise ImproperlyConfigured(
            f"ARCANA_SERVICE is only for ARCANA_MODE=microservices (the mode is {mode})."
        )
    if mode is Mode.MONOLITHIC:
        return Deployment(mode=mode, internal_deadline=deadline, internal_insecure=insecure)
    if mode is Mode.MICROSERVICES:
        return _microservice(service, peers, deadline=deadline, insecure=insecure)
    if tier is None:
        choices = ", ".join(member.value for member in Tier)
        raise ImproperlyConfigured(f"ARCANA_TIER must be set in layered mode: one of {choices}.")
    # A tier keeps only the address of the tier it calls; the other may come
    # from an environment file shared by every tier.
    peer = _PEER_OF.get(tier)
    if peer is not None and peer not in peers:
        raise ImproperlyConfigured(f"{peer} must be set for the {tier} tier: {_ADDR_FORMS}.")
    return Deployment(
        mode=mode,
        tier=tier,
        service_targets=peers[SERVICE_ADDR] if peer == SERVICE_ADDR else (),
        repository_targets=peers[REPOSITORY_ADDR] if peer == REPOSITORY_ADDR else (),
        internal_deadline=deadline,
        internal_insecure=insecure,
    )


def _microservice(
    service: Service | None,
    peers: Mapping[str, tuple[str, ...]],
    *,
    deadline: float,
    insecure: bool,
) -> Deployment:
    if service is None:
        choices = ", ".join(member.value for member in Service)
        raise ImproperlyConfigured(
            f"ARCANA_SERVICE must be set in microservices mode: one of {choices}."
        )
    peer = _PEER_OF_SERVICE[service]
    if peer not in peers:
        raise ImproperlyConfigured(
            f"{peer} must be set for the {service} service (it calls the other one's "
            f"internal server): {_ADDR_FORMS}."
        )
    return Deployment(
        mode=Mode.MICROSERVICES,
        service=service,
        users_targets=peers[USERS_ADDR] if peer == USERS_ADDR else (),
        auth_targets=peers[AUTH_ADDR] if peer == AUTH_ADDR else (),
        internal_deadline=deadline,
        internal_insecure=insecure,
    )
