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
  tier, whose repository tier may use it too). Above its home tier it is
  remote: the service tier's ``repo`` is an
  :class:`arcana.core.internal.RemoteRepository` of the app's Protocol, built
  at start-up (so bad TLS settings stop the process). The controller tier's
  hop (controller -> service) is not built yet: using it raises
  ``NotImplementedError``, on first use, so the process still starts.

The repository tier serves every ``repo`` boundary registered here
(:func:`repository_boundaries`) with ``arcana.core.internal``'s servicer.

Callers look the attribute up at call time (``users.service.user_get(...)``),
never bind it at import, so the choice lives in one place and a test can put
a spy in front of a boundary.
"""

import contextlib
from collections.abc import Callable, Collection, MutableMapping
from dataclasses import dataclass

from django.conf import settings

MONOLITHIC = "monolithic"
REMOTE_NOT_BUILT = "layered mode: remote implementation not built yet"
# Tiers from the top; a boundary is local in its home tier and below it.
_TIERS = ("controller", "service", "repository")


@dataclass(frozen=True)
class Remote:
    """What a remote implementation of a boundary needs from its app: the
    Protocol (a factory, imported once the apps are loaded), the tier it
    lives in, and the methods that only read (retried once when the tier is
    unavailable)."""

    interface: Callable[[], type]
    home: str = "repository"
    reads: Collection[str] = ()


# Every boundary whose home is the repository tier: "users.repo" -> (Remote, local factory).
_REPOSITORIES: dict[str, tuple[Remote, Callable[[], object]]] = {}


def repository_boundaries() -> dict[str, tuple[type, object]]:
    """What the repository tier serves: boundary -> (Protocol, local implementation)."""
    return {name: (remote.interface(), local()) for name, (remote, local) in _REPOSITORIES.items()}


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
            if spec.home == "repository":
                _REPOSITORIES[f"{app}.{name}"] = (spec, local[name])

    def _is_local(self, name: str) -> bool:
        if mode() == MONOLITHIC:
            return True
        spec, here = self._remote.get(name), tier()
        if spec is None or here not in _TIERS:
            return False
        return _TIERS.index(here) >= _TIERS.index(spec.home)

    def _remote_implementation(self, name: str) -> object:
        spec = self._remote.get(name)
        if spec is None or spec.home != "repository" or tier() != "service":
            raise NotImplementedError(REMOTE_NOT_BUILT)
        from arcana.core.internal import RemoteRepository  # grpc: only where a hop is

        return RemoteRepository.from_settings(
            f"{self._app}.{name}", spec.interface(), reads=spec.reads
        )

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
        """At start-up (``AppConfig.ready``): bind every boundary that is
        local or has a remote implementation now; leave the hops not built
        yet to fail on use."""
        for name in self._local:
            with contextlib.suppress(NotImplementedError):
                self.resolve(name)
