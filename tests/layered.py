"""Layered mode in one test process: the API suites run in every mode.

A module opts in with ``pytestmark = [..., every_mode]``: each of its tests
then runs twice, ``[monolithic]`` (the boundaries are the apps' modules, as
ever) and ``[layered]`` (Sentry's ``all_silo_test`` idea, as a fixture
parametrization): the test process is the controller tier, and the service and
repository tiers are real internal gRPC servers on loopback (port 0), each a
:class:`~arcana.core.internal.BoundaryServicer` of
``delegation.served_boundaries(tier)`` as ``manage.py tierserver`` builds it.

The three tiers share one Python process, so each boundary's package
attribute (``users.service``, ``users.repo``, ``authn.service``,
``authn.repo``) is a :class:`ByTier` while a layered test runs: it answers
with what *the tier running the code* binds in production
(``delegation.reach``), read from :data:`current_tier`:

- the controller tier (the test client's request handler, the public gRPC
  server's handlers): ``*.service`` are clients of the service server,
  ``*.repo`` are out of reach;
- the service tier (inside the service server's ``Invoke``): the services are
  local, ``*.repo`` are clients of the repository server, so authn's services
  calling ``users.service`` stay in the service tier as they do in production;
- the repository tier (inside the repository server's ``Invoke``): all local;
- no tier (the test's own set-up and assertions): all local, as in monolithic
  mode: factories and ``User.objects`` reads work.

:class:`NoQueries` makes every query and transaction in the controller or
service tier raise ``HiddenDatabaseUse``, as the refusing engine
(``arcana.db.refuse``) does in a real deployment, and fails the test at
teardown whatever the code did with the error (so does a use of an
out-of-reach boundary). Since no database use can hide above the repository
tier, no code path can quietly skip a hop either. Layered tests need a
transactional database (the servers answer on their own threads, with their
own connections): the ``layered`` parameter carries that mark.

Only what reaches a tier through a request counts as that tier's: the test
client's handler and the public gRPC server's ``ErrorInterceptor`` enter the
controller tier; ``Client.login`` / ``force_login`` and the test's own calls
run outside any tier, like the admin in production (the repository tier).
"""

import importlib
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
import pytest
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import Atomic
from django.test.client import ClientHandler

from arcana.core import delegation
from arcana.core.internal import CALLER_TIER, BoundaryServicer, RemoteBoundary
from arcana.db.refuse.base import HiddenDatabaseUse, RefusingCursor
from arcana.grpc.interceptors import ErrorInterceptor
from protos.arcana.internal.v1 import boundary_pb2, boundary_pb2_grpc

MONOLITHIC = "monolithic"
LAYERED = "layered"
CONTROLLER, SERVICE, REPOSITORY = "controller", "service", "repository"
TIERS = (CONTROLLER, SERVICE, REPOSITORY)
# The tiers of a layered deployment that run with the refusing engine.
WITHOUT_DATABASE = frozenset({CONTROLLER, SERVICE})
# Generous: the hops are loopback calls, but a loaded CI host is slow; a call
# that needs this long is reported as 503 and fails its test anyway.
DEADLINE = 10.0

# The tier the running code is in; None outside any tier (test set-up).
current_tier: ContextVar[str | None] = ContextVar("arcana_test_tier", default=None)

# Each test below runs in monolithic and in layered mode.
every_mode = pytest.mark.usefixtures("deployment_mode")
_LAYERED_DB = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@contextmanager
def at_tier(tier: str | None) -> Iterator[None]:
    """Run the block as code of ``tier``."""
    token = current_tier.set(tier)
    try:
        yield
    finally:
        current_tier.reset(token)


# --- the servers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One internal call as its server saw it."""

    caller: str  # the calling tier, from the call's metadata
    boundary: str
    method: str

    def __str__(self) -> str:
        return f"{self.boundary}.{self.method}"


class TierServicer(BoundaryServicer):
    """A tier's servicer that runs each call as code of that tier and notes it."""

    def __init__(self, tier: str, boundaries: Mapping[str, tuple[type, object]]) -> None:
        super().__init__(boundaries)
        self.tier = tier
        self.calls: list[Call] = []

    def Invoke(
        self, request: boundary_pb2.InvokeRequest, context: grpc.ServicerContext
    ) -> boundary_pb2.InvokeReply:
        caller = dict(context.invocation_metadata()).get(CALLER_TIER, "")
        self.calls.append(Call(str(caller), request.boundary, request.method))
        with at_tier(self.tier):
            return super().Invoke(request, context)


_ADD = {
    SERVICE: boundary_pb2_grpc.add_ServiceServicer_to_server,
    REPOSITORY: boundary_pb2_grpc.add_RepositoryServicer_to_server,
}


@dataclass
class TierServer:
    tier: str
    server: grpc.Server
    servicer: TierServicer
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_tier(tier: str) -> TierServer:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{tier}-tier")
    )
    servicer = TierServicer(tier, delegation.served_boundaries(tier))
    _ADD[tier](servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return TierServer(tier=tier, server=server, servicer=servicer, port=port)


# --- the boundaries, by tier -----------------------------------------------------------


class OutOfReach:
    """A boundary from a tier that has no route to it (the controller's ``repo``)."""

    def __init__(self, boundary: str, tier: str, noted: Callable[[str], None]) -> None:
        self._message = f"{boundary} is out of reach of the {tier} tier"
        self._noted = noted

    def __getattr__(self, name: str) -> NoReturn:
        self._noted(f"{self._message} ({name})")
        raise delegation.NotReachable(self._message)


class ByTier:
    """One boundary's implementation as seen by the tier running the code."""

    def __init__(self, boundary: str, implementations: Mapping[str | None, object]) -> None:
        self._boundary = boundary
        self._implementations = dict(implementations)

    def current(self) -> object:
        """The implementation the running code's tier binds."""
        return self._implementations[current_tier.get()]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)

    def __repr__(self) -> str:
        return f"<{self._boundary} in the {current_tier.get() or 'no'} tier>"


@dataclass
class Tiers:
    """The service and repository servers of the session, and the clients of them."""

    servers: dict[str, TierServer]
    clients: dict[tuple[str, str], RemoteBoundary]  # (boundary, calling tier) -> client
    specs: dict[str, delegation.Remote]
    local: dict[str, object]

    @classmethod
    def start(cls) -> "Tiers":
        servers = {tier: start_tier(tier) for tier in (SERVICE, REPOSITORY)}
        specs = delegation.remote_specs()
        local = {
            name: implementation
            for home in servers
            for name, (_, implementation) in delegation.served_boundaries(home).items()
        }
        clients: dict[tuple[str, str], RemoteBoundary] = {}
        for name, spec in specs.items():
            for tier in TIERS:
                if delegation.reach(home=spec.home, tier=tier) == delegation.REMOTE:
                    clients[name, tier] = RemoteBoundary(
                        name,
                        spec.interface(),
                        home=spec.home,
                        reads=spec.reads,
                        targets=(servers[spec.home].target,),
                        deadline=DEADLINE,
                        credentials=None,
                        caller_tier=tier,
                    )
        return cls(servers=servers, clients=clients, specs=specs, local=local)

    def stop(self) -> None:
        for client in self.clients.values():
            client.close()
        for server in self.servers.values():
            server.server.stop(None)

    def by_tier(self, name: str, noted: Callable[[str], None]) -> ByTier:
        home = self.specs[name].home
        implementations: dict[str | None, object] = {None: self.local[name]}
        for tier in TIERS:
            how = delegation.reach(home=home, tier=tier)
            if how == delegation.LOCAL:
                implementations[tier] = self.local[name]
            elif how == delegation.REMOTE:
                implementations[tier] = self.clients[name, tier]
            else:
                implementations[tier] = OutOfReach(name, tier, noted)
        return ByTier(name, implementations)


# --- no database above the repository tier ---------------------------------------------


class _NotingCursor(RefusingCursor):
    """The refusing engine's cursor (no connection, an error naming the SQL),
    which also tells the guard."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self._note = note

    def execute(self, sql: str, params: Any = None) -> NoReturn:
        self._note(str(sql))
        super().execute(sql, params)

    def executemany(self, sql: str, param_list: Any) -> NoReturn:
        self._note(str(sql))
        super().executemany(sql, param_list)

    def callproc(self, procname: str, params: Any = None, kparams: Any = None) -> NoReturn:
        self._note(f"stored procedure {procname}")
        super().callproc(procname, params, kparams)


@dataclass
class NoQueries:
    """In the tiers without a database, every connection behaves like the
    refusing engine's (``arcana.db.refuse``): a cursor that raises
    ``HiddenDatabaseUse`` with the SQL, and no transaction. Each refusal is
    noted, so the test fails even where the code swallowed the error."""

    refused: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.refused.append(f"{current_tier.get()} tier: {what}")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # _cursor, not cursor(): where the refusing engine refuses, below the
        # CursorWrapper (and chunked_cursor()), and before any connection opens.
        cursor = BaseDatabaseWrapper._cursor  # type: ignore[attr-defined]
        enter = Atomic.__enter__
        note = self.note

        def guarded_cursor(db: BaseDatabaseWrapper, name: str | None = None) -> Any:
            if current_tier.get() in WITHOUT_DATABASE:
                return _NotingCursor(note)
            return cursor(db, name)

        def guarded_enter(atomic: Atomic) -> None:
            if current_tier.get() in WITHOUT_DATABASE:
                note("a transaction (transaction.atomic)")
                raise HiddenDatabaseUse("a transaction (transaction.atomic)")
            enter(atomic)

        monkeypatch.setattr(BaseDatabaseWrapper, "_cursor", guarded_cursor)
        monkeypatch.setattr(Atomic, "__enter__", guarded_enter)

    def verdict(self) -> str | None:
        """Why the test fails, or None."""
        if not self.refused:
            return None
        return "the layering was broken (database use or an out-of-reach boundary):\n  " + (
            "\n  ".join(self.refused)
        )

    def check(self) -> None:
        """Fail the running test if anything was refused (at its teardown)."""
        verdict = self.verdict()
        if verdict:
            pytest.fail(verdict)


# --- the edge: where a request enters the controller tier ------------------------------


def _enter_controller_at_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test client's handler (REST) and the public gRPC server's outermost
    interceptor run their request as the controller tier."""
    handle = ClientHandler.__call__

    def call(self: ClientHandler, environ: dict[str, Any]) -> Any:
        with at_tier(CONTROLLER):
            return handle(self, environ)

    scope = ErrorInterceptor.scope

    @contextmanager
    def edge_scope(self: ErrorInterceptor, method: str, context: Any) -> Iterator[None]:
        with at_tier(CONTROLLER), scope(self, method, context):
            yield

    monkeypatch.setattr(ClientHandler, "__call__", call)
    monkeypatch.setattr(ErrorInterceptor, "scope", edge_scope)


@dataclass
class Layered:
    """What a layered test can inspect: the calls that crossed each hop."""

    tiers: Tiers
    guard: NoQueries

    def calls(self, tier: str) -> list[Call]:
        """The calls tier ``tier`` served (``"service"`` or ``"repository"``)."""
        return self.tiers.servers[tier].servicer.calls

    def crossed(self, tier: str) -> list[str]:
        """``boundary.method`` of each call ``tier`` served, in order."""
        return [str(call) for call in self.calls(tier)]

    def controller(self) -> AbstractContextManager[None]:
        """Run a block as the controller tier (what the edge does per request)."""
        return at_tier(CONTROLLER)


# --- fixtures (imported by tests/conftest.py) --------------------------------------------


@pytest.fixture(scope="session")
def tier_servers() -> Iterator[Tiers]:
    tiers = Tiers.start()
    yield tiers
    tiers.stop()


@pytest.fixture
def layered(tier_servers: Tiers, monkeypatch: pytest.MonkeyPatch) -> Iterator[Layered]:
    """This test process as the controller tier of a layered deployment."""
    for server in tier_servers.servers.values():
        server.servicer.calls.clear()
    guard = NoQueries()
    for name in tier_servers.specs:
        package, attribute = name.split(".")
        monkeypatch.setattr(
            importlib.import_module(package), attribute, tier_servers.by_tier(name, guard.note)
        )
    guard.install(monkeypatch)
    _enter_controller_at_the_edge(monkeypatch)
    yield Layered(tiers=tier_servers, guard=guard)
    guard.check()


@pytest.fixture(params=[MONOLITHIC, pytest.param(LAYERED, marks=_LAYERED_DB)])
def deployment_mode(request: pytest.FixtureRequest) -> str:
    """The mode the test runs in (``every_mode``): monolithic, or layered."""
    mode: str = request.param
    if mode == LAYERED:
        marker = request.node.get_closest_marker("django_db")
        if marker is None or not marker.kwargs.get("transaction"):
            pytest.fail("a layered test needs django_db(transaction=True): tiers have threads")
        request.getfixturevalue("layered")
    return mode
