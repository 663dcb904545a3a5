"""Each boundary's implementation, chosen once per process by deployment mode.

Sentry's hybrid-cloud delegation (one interface, a local and a remote
implementation picked by silo mode) without its metaclasses. An app names its
boundaries as attributes of its package (``users.service``, ``users.repo``),
typed by Protocols, and hands this module a factory of the local
implementation of each; :class:`Boundaries` resolves them:

- monolithic (the default): the local implementation, which is the app's
  module of functions itself, bound at start-up (``AppConfig.ready``): a call
  through the boundary is a plain function call;
- any other mode: a remote implementation, which is not built yet, so using
  the boundary raises ``NotImplementedError``. The process still starts
  (its settings checks, health endpoint and refusing database engine are
  someone else's to judge); the first call across the boundary fails loudly.

Callers look the attribute up at call time (``users.service.user_get(...)``),
never bind it at import, so the choice lives in one place and a test can put
a spy in front of a boundary.
"""

from collections.abc import Callable, MutableMapping

from django.conf import settings

MONOLITHIC = "monolithic"
REMOTE_NOT_BUILT = "layered mode: remote implementation not built yet"


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
    ) -> None:
        self._namespace = namespace
        self._app = app
        self._local = local

    def resolve(self, name: str) -> object:
        """The implementation of boundary ``name``, bound into the package on
        first use so that later lookups are plain attribute reads."""
        factory = self._local.get(name)
        if factory is None:
            raise AttributeError(f"module {self._app!r} has no attribute {name!r}")
        if mode() != MONOLITHIC:
            raise NotImplementedError(REMOTE_NOT_BUILT)
        implementation = factory()
        self._namespace[name] = implementation
        return implementation

    def bind(self) -> None:
        """At start-up (``AppConfig.ready``): bind every boundary now in
        monolithic mode; in the other modes leave them to fail on use."""
        if mode() == MONOLITHIC:
            for name in self._local:
                self.resolve(name)
