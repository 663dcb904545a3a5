"""Each boundary's implementation, chosen once per process by deployment mode.

Sentry's hybrid-cloud delegation (one interface, a local and a remote
implementation picked by silo mode) without its metaclasses. An app names its
boundaries as attributes of its package (``users.service``, ``users.repo``),
typed by Protocols, and hands this module a factory of the local
implementation of each; :class:`Boundaries` resolves them:

- monolithic (the default): the local implementation, which is the app's
  module of functions itself, bound at start-up (``AppConfig.ready``): a call
  through the boundary is a plain function call;
- layered mode: a boundary is local in its home tier and in the tiers below
  it (a ``repo`` lives in the repository tier; a ``service`` in the service
  tier, whose repository tier may use it too: the admin's actions). One tier
  above its home it is remote: the service tier's ``repo`` and the controller
  tier's ``service`` are :class:`arcana.core.internal.RemoteBoundary` clients
  of the app's Protocol, built when a server starts (:func:`connect`, so bad
  TLS settings stop it before its first request) or on first use in a
  command (``migrate`` needs no peer's certificate). Two tiers above (the
  controller tier's ``repo``) it is out of reach: using it raises
  :class:`NotReachable`, on first use, so the process still starts and the
  mistake names itself;
- microservices mode: an app is local in the service that owns it (users in
  the users service, authn in the auth service), both its boundaries. In the
  other service its ``service`` is a :class:`RemoteBoundary` client of the
  owner's internal server, and its ``repo`` is out of reach: a service never
  touches another one's data but through that service's rules.

Each tier serves the boundaries whose home it is (:func:`served_boundaries`)
with ``arcana.core.internal``'s servicer.

Callers look the attribute up at call time (``users.service.user_get(...)``),
never bind it at import, so the choice lives in one place and a test can put
a spy in front of a boundary.
"""

import contextlib
from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings

B = TypeVar("B")

MONOLITHIC = "monolithic"
LAYERED = "layered"
MICROSERVICES = "microservices"
# Tiers from the top; a boundary is local in its home tier and below it.
_TIERS = ("controller", "service", "repository")


@dataclass(frozen=True)
class Remote:
    """What a remote implementation of a boundary needs from its app: the
    Protocol (a factory, imported once the apps are loaded), the tier it
    lives in, the methods that only read (retried once when the tier is
    unavailable), and the reads a layered tier may answer from the shared
    cache before it calls (``cached``: method -> a factory of a function
    taking the method's arguments and returning the cached result or None;
    see :func:`front`)."""

    interface: Callable[[], type]
    home: str = "repository"
    reads: Collection[str] = ()
    cached: Mapping[str, Callable[[], Callable[..., object | None]]] = field(default_factory=dict)


def front(remote: B, spec: Remote) -> B:
    """Put ``spec.cached``'s cache reads in front of ``remote``'s methods, in
    place: a read found in the shared cache costs no hop; a miss (or no
    cache, or a record invalidated moments ago) calls the tier as before.

    Layered mode only: its tiers are one deployment sharing one Redis, and the
    repository tier keeps the cache exact (invalidated on every write, refilled
    only from the database), so a tier above reading it sees what the
    repository would answer. Microservices never read each other's cache.
    """
    for method, peek_factory in spec.cached.items():
        call = getattr(remote, method)
        peek = peek_factory()

        def read(
            call: Callable[..., object] = call,
            peek: Callable[..., object | None] = peek,
            **arguments: object,
        ) -> object:
            found = peek(**arguments)
            return call(**arguments) if found is None else found

        setattr(remote, method, read)
    return remote


class NotReachable(RuntimeError):
    """A boundary used from a tier that has no route to it (the controller
    tier's ``repo``): a layering mistake, raised on use."""


# Every boundary by its home tier: "repository" -> {"users.repo": (Remote, local factory)}.
_HOMED: dict[str, dict[str, tuple[Remote, Callable[[], object]]]] = {}

# How a tier reaches a boundary (:func:`reach`).
LOCAL = "local"
REMOTE = "remote"
OUT_OF_REACH = "out of reach"


def reach(*, home: str, tier: str | None) -> str:
    """How code in layered mode's tier ``tier`` reaches a boundary whose home
    is ``home``: :data:`LOCAL` in its home tier and below, :data:`REMOTE` from
    the tier just above, :data:`OUT_OF_REACH` from further up (or from no tier)."""
    if home not in _TIERS:
        raise ValueError(f"no tier {home!r}")
    if tier not in _TIERS:
        return OUT_OF_REACH
    here, there = _TIERS.index(tier), _TIERS.index(home)
    if here >= there:
        return LOCAL
    return REMOTE if here + 1 == there else OUT_OF_REACH


def service_reach(*, app: str, home: str, owned: str | None) -> str:
    """How code in the microservice owning app ``owned`` reaches a boundary of
    ``app`` whose home is ``home``: :data:`LOCAL` in its own app,
    :data:`REMOTE` for another app's service, :data:`OUT_OF_REACH` for
    another app's repository."""
    if owned == app:
        return LOCAL
    return REMOTE if home == "service" else OUT_OF_REACH


def remote_specs() -> dict[str, Remote]:
    """Every boundary with a remote implementation: ``"users.repo"`` -> its :class:`Remote`."""
    return {name: spec for homed in _HOMED.values() for name, (spec, _) in homed.items()}


def served_boundaries(home: str, *, app: str | None = None) -> dict[str, tuple[type, object]]:
    """What tier ``home`` serves: boundary -> (Protocol, local implementation);
    with ``app``, only that app's (a microservice serves its own app's service)."""
    return {
        name: (remote.interface(), local())
        for name, (remote, local) in _HOMED.get(home, {}).items()
        if app is None or name.partition(".")[0] == app
    }


def repository_boundaries() -> dict[str, tuple[type, object]]:
    """What the repository tier serves."""
    return served_boundaries("repository")


def service_boundaries() -> dict[str, tuple[type, object]]:
    """What the service tier serves."""
    return served_boundaries("service")


def owned_app() -> str | None:
    """The app this microservice owns (None outside microservices mode)."""
    deployment = getattr(settings, "ARCANA_DEPLOYMENT", None)
    found = getattr(deployment, "owned_app", None)
    return None if found is None else str(found)


def tier() -> str | None:
    deployment = getattr(settings, "ARCANA_DEPLOYMENT", None)
    found = getattr(deployment, "tier", None)
    return None if found is None else str(found)


def mode() -> str:
    """The deployment mode (``settings.ARCANA_DEPLOYMENT``, parsed from
    ``ARCANA_MODE`` by ``arcana.modes``; monolithic when absent)."""
    deployment = getattr(settings, "ARCANA_DEPLOYMENT", None)
    return str(getattr(deployment, "mode", MONOLITHIC))


class Boundaries:
    """The boundaries of one app package: attribute name -> local factory."""

    def __init__(
        self,
        namespace: MutableMapping[str, object],
        app: str,
        local: dict[str, Callable[[], object]],
        remote: dict[str, Remote] | None = None,
    ) -> None:
        self._namespace = namespace
        self._app = app
        self._local = local
        self._remote = remote or {}
        for name, spec in self._remote.items():
            if spec.home not in _TIERS:
                raise ValueError(f"{app}.{name}: no tier {spec.home!r}")
            _HOMED.setdefault(spec.home, {})[f"{app}.{name}"] = (spec, local[name])

    def _reach(self, name: str) -> str:
        spec = self._remote.get(name)
        if mode() == MICROSERVICES:
            home = spec.home if spec is not None else "repository"
            return service_reach(app=self._app, home=home, owned=owned_app())
        return OUT_OF_REACH if spec is None else reach(home=spec.home, tier=tier())

    def _is_local(self, name: str) -> bool:
        return mode() == MONOLITHIC or self._reach(name) == LOCAL

    def _remote_implementation(self, name: str) -> object:
        spec = self._remote.get(name)
        boundary = f"{self._app}.{name}"
        if spec is None or self._reach(name) != REMOTE:
            if mode() == MICROSERVICES:
                here = settings.ARCANA_DEPLOYMENT.name
                raise NotReachable(
                    f"{boundary} is another service's data: the {here} service reaches "
                    f"{self._app} only through {self._app}.service"
                )
            raise NotReachable(
                f"{boundary} lives in the {spec.home if spec else 'unknown'} tier, which the "
                f"{tier()} tier does not call (a tier calls only the one below it)"
            )
        from arcana.core.internal import RemoteBoundary  # grpc: only where a hop is

        remote = RemoteBoundary.from_settings(
            boundary, spec.interface(), app=self._app, home=spec.home, reads=spec.reads
        )
        return front(remote, spec) if mode() == LAYERED else remote

    def resolve(self, name: str) -> object:
        """The implementation of boundary ``name``, bound into the package on
        first use so that later lookups are plain attribute reads."""
        factory = self._local.get(name)
        if factory is None:
            raise AttributeError(f"module {self._app!r} has no attribute {name!r}")
        implementation = factory() if self._is_local(name) else self._remote_implementation(name)
        self._namespace[name] = implementation
        return implementation

    def bind(self) -> None:
        """At start-up (``AppConfig.ready``): bind every local boundary. Remote
        ones wait for :func:`connect` (serving processes) or their first use
        (commands: ``migrate`` needs no peer, so no certificate for one); those
        out of reach fail on use."""
        _ALL[self._app] = self
        for name in self._local:
            if self._is_local(name):
                self.resolve(name)

    def connect(self) -> None:
        """Build every remote boundary of this app (bad TLS settings raise here)."""
        for name in self._local:
            if name not in self._namespace:
                with contextlib.suppress(NotReachable):
                    self.resolve(name)


# Every app's boundaries, by app, once bound.
_ALL: dict[str, Boundaries] = {}


def connect() -> None:
    """In a process that serves (``arcana.wsgi``, the gRPC servers), at start:
    build the clients of every remote boundary, so that a missing or bad
    certificate stops the server before it takes a request."""
    if mode() == MONOLITHIC:
        return
    for boundaries in _ALL.values():
        boundaries.connect()
