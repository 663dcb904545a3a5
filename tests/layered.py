"""Split deployments in one test process: the API suites run in every mode.

A module opts in with ``pytestmark = [..., every_mode]``: each of its tests
then runs three times (Sentry's ``all_silo_test`` idea, as a fixture
parametrization):

- ``[monolithic]``: the boundaries are the apps' modules, as ever;
- ``[layered]``: the test process is the controller tier, and the service and
  repository tiers are real internal gRPC servers on loopback (port 0), each
  serving ``delegation.served_boundaries(tier)`` as ``manage.py tierserver``
  builds it;
- ``[microservices]``: the test process plays the users service and the auth
  service, and each has its real internal gRPC server on loopback serving its
  own app's service, ``delegation.served_boundaries("service", app=...)``
  (users-internal: ``users.service``; auth-internal: ``authn.service``).

Each split deployment is a :class:`Layout`: the places code runs in (tiers or
services), a ContextVar saying which place runs the current code
(:data:`current_tier`, :data:`current_service`), the places with an internal
server, how each place reaches each boundary, and where a request enters at
the edge. Its servers run every call as code of their place and note it
(:class:`PlaceServicer`). While a split test runs, each boundary's package
attribute (``users.service``, ``users.repo``, ``authn.service``,
``authn.repo``) is a :class:`ByPlace`: it answers with what *the place running
the code* binds in production: the local module, a
:class:`~arcana.core.internal.RemoteBoundary` client of the server that
serves it (its calls carry the place as their caller), or an
:class:`OutOfReach` that fails the test. Outside any place (the test's own
set-up and assertions) everything is local, as in monolithic mode: factories
and ``User.objects`` reads work.

Layered mode, by ``delegation.reach``:

- the controller tier (the test client's request handler, the public gRPC
  server's handlers): ``*.service`` are clients of the service server,
  ``*.repo`` are out of reach;
- the service tier (inside the service server's ``Invoke``): the services are
  local, ``*.repo`` are clients of the repository server, so authn's services
  calling ``users.service`` stay in the service tier as they do in production;
- the repository tier (inside the repository server's ``Invoke``): all local.

:class:`NoQueries` makes every query and transaction in the controller or
service tier raise ``HiddenDatabaseUse``, as the refusing engine
(``arcana.db.refuse``) does in a real deployment. Since no database use can
hide above the repository tier, no code path can quietly skip a hop either.

Microservices mode, by ``delegation.service_reach``: in each service its own
app's boundaries are local, the other app's ``service`` is a client of the
owner's internal server and its ``repo`` is out of reach. A REST request
enters the auth service under ``/api/v1/auth/`` and at ``/.well-known/jwks.json``
and the users service everywhere else; a public gRPC call enters the auth
service for ``arcana.v1.AuthService`` and the users service otherwise (as the
gateway splits them). :class:`ForeignData` installs the real
``arcana.db.ownership.ServiceDataRouter`` with the running call's service as
"here": any ORM use of the other service's models raises ``ForeignDataUse``.
Both services share the one test database, so raw SQL is not checked.

Each guard notes what it refused (and each use of an out-of-reach boundary)
and fails the test at teardown, whatever the code did with the error. Split
tests need a transactional database (the servers answer on their own
threads, with their own connections): their parameters carry that mark.

Only what reaches a place through a request counts as that place's: the test
client's handler and the public gRPC server's ``ErrorInterceptor`` enter the
edge's place; ``Client.login`` / ``force_login`` and the test's own calls run
outside any place, like the admin in production.
"""

import importlib
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import grpc
import pytest
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.transaction import Atomic
from django.test.client import ClientHandler

from arcana.core import delegation
from arcana.core.internal import CALLER_TIER, BoundaryServicer, RemoteBoundary
from arcana.db.ownership import ForeignDataUse, ServiceDataRouter
from arcana.db.refuse.base import HiddenDatabaseUse, RefusingCursor
from arcana.grpc.interceptors import ErrorInterceptor
from arcana.modes import APP_OF_SERVICE, Service
from protos.arcana.internal.v1 import boundary_pb2, boundary_pb2_grpc

MONOLITHIC = "monolithic"
LAYERED = "layered"
MICROSERVICES = "microservices"
CONTROLLER, SERVICE, REPOSITORY = "controller", "service", "repository"
TIERS = (CONTROLLER, SERVICE, REPOSITORY)
USERS, AUTH = "users", "auth"
SERVICES = (USERS, AUTH)
# The tiers of a layered deployment that run with the refusing engine.
WITHOUT_DATABASE = frozenset({CONTROLLER, SERVICE})
# Generous: the hops are loopback calls, but a loaded CI host is slow; a call
# that needs this long is reported as 503 and fails its test anyway.
DEADLINE = 10.0

# The tier / service the running code is in; None outside any (test set-up).
current_tier: ContextVar[str | None] = ContextVar("arcana_test_tier", default=None)
current_service: ContextVar[str | None] = ContextVar("arcana_test_service", default=None)

# Each test below runs in monolithic, layered and microservices mode.
every_mode = pytest.mark.usefixtures("deployment_mode")
_SPLIT_DB = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@contextmanager
def running_in(where: ContextVar[str | None], place: str | None) -> Iterator[None]:
    """Run the block as code of ``place`` (a tier or a service, by ``where``)."""
    token = where.set(place)
    try:
        yield
    finally:
        where.reset(token)


def at_tier(tier: str | None) -> AbstractContextManager[None]:
    """Run the block as code of layered mode's ``tier``."""
    return running_in(current_tier, tier)


# --- the deployments -------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One split deployment as this process plays it."""

    kind: str  # what a place is: "tier" or "service"
    where: ContextVar[str | None]  # the place running the code
    places: tuple[str, ...]
    # The places with an internal server -> (the internal service it answers,
    # the one app it serves or None for all): ``served_boundaries``' arguments.
    servers: Mapping[str, tuple[str, str | None]]
    # How code in a place reaches a boundary: (app, home, place) -> delegation.LOCAL...
    reach: Callable[[str, str, str], str]
    # The place a public request enters: REST by path, gRPC by full method name.
    rest_edge: Callable[[str], str]
    grpc_edge: Callable[[str], str]

    def name(self, place: str | None) -> str:
        return f"{place or 'no'} {self.kind}"


def _tier_reach(app: str, home: str, tier: str) -> str:
    return delegation.reach(home=home, tier=tier)


def _service_reach(app: str, home: str, service: str) -> str:
    return delegation.service_reach(app=app, home=home, owned=APP_OF_SERVICE[Service(service)])


def _controller(_: str) -> str:
    return CONTROLLER


def _rest_service(path: str) -> str:
    return AUTH if path.startswith(("/api/v1/auth/", "/.well-known/jwks.json")) else USERS


def _grpc_service(method: str) -> str:
    return AUTH if method.startswith("/arcana.v1.AuthService/") else USERS


LAYERED_LAYOUT = Layout(
    kind="tier",
    where=current_tier,
    places=TIERS,
    servers={SERVICE: (SERVICE, None), REPOSITORY: (REPOSITORY, None)},
    reach=_tier_reach,
    rest_edge=_controller,
    grpc_edge=_controller,
)
MICROSERVICES_LAYOUT = Layout(
    kind="service",
    where=current_service,
    places=SERVICES,
    servers={service: (SERVICE, APP_OF_SERVICE[Service(service)]) for service in SERVICES},
    reach=_service_reach,
    rest_edge=_rest_service,
    grpc_edge=_grpc_service,
)


# --- the servers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One internal call as its server saw it."""

    caller: str  # the calling tier or service, from the call's metadata
    boundary: str
    method: str

    def __str__(self) -> str:
        return f"{self.boundary}.{self.method}"


class PlaceServicer(BoundaryServicer):
    """A place's servicer that runs each call as code of that place and notes it."""

    def __init__(
        self,
        where: ContextVar[str | None],
        place: str,
        boundaries: Mapping[str, tuple[type, object]],
    ) -> None:
        super().__init__(boundaries)
        self.where = where
        self.place = place
        self.calls: list[Call] = []

    def Invoke(
        self, request: boundary_pb2.InvokeRequest, context: grpc.ServicerContext
    ) -> boundary_pb2.InvokeReply:
        caller = dict(context.invocation_metadata()).get(CALLER_TIER, "")
        self.calls.append(Call(str(caller), request.boundary, request.method))
        with running_in(self.where, self.place):
            return super().Invoke(request, context)


_ADD = {
    SERVICE: boundary_pb2_grpc.add_ServiceServicer_to_server,
    REPOSITORY: boundary_pb2_grpc.add_RepositoryServicer_to_server,
}


@dataclass
class PlaceServer:
    place: str
    server: grpc.Server
    servicer: PlaceServicer
    port: int
    serves: frozenset[str]  # its boundaries' names

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_server(layout: Layout, place: str) -> PlaceServer:
    home, app = layout.servers[place]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{place}-{layout.kind}")
    )
    boundaries = delegation.served_boundaries(home, app=app)
    servicer = PlaceServicer(layout.where, place, boundaries)
    _ADD[home](servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return PlaceServer(place, server, servicer, port, frozenset(boundaries))


# --- the boundaries, by place ----------------------------------------------------------


class OutOfReach:
    """A boundary from a place that has no route to it (the controller's ``repo``,
    the other service's ``repo``)."""

    def __init__(self, boundary: str, place: str, noted: Callable[[str], None]) -> None:
        self._message = f"{boundary} is out of reach of the {place}"
        self._noted = noted

    def __getattr__(self, name: str) -> NoReturn:
        self._noted(f"{self._message} ({name})")
        raise delegation.NotReachable(self._message)


class ByPlace:
    """One boundary's implementation as seen by the place running the code."""

    def __init__(
        self, boundary: str, layout: Layout, implementations: Mapping[str | None, object]
    ) -> None:
        self._boundary = boundary
        self._layout = layout
        self._implementations = dict(implementations)

    def current(self) -> object:
        """The implementation the running code's place binds."""
        return self._implementations[self._layout.where.get()]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)

    def __repr__(self) -> str:
        return f"<{self._boundary} in the {self._layout.name(self._layout.where.get())}>"


@dataclass
class Split:
    """A split deployment's internal servers for the session, and the clients of them."""

    layout: Layout
    servers: dict[str, PlaceServer]
    clients: dict[tuple[str, str], RemoteBoundary]  # (boundary, calling place) -> client
    specs: dict[str, delegation.Remote]
    local: dict[str, object]

    @classmethod
    def start(cls, layout: Layout) -> "Split":
        servers = {place: start_server(layout, place) for place in layout.servers}
        server_of = {name: server for server in servers.values() for name in server.serves}
        specs = delegation.remote_specs()
        local = {
            name: implementation
            for home in (SERVICE, REPOSITORY)
            for name, (_, implementation) in delegation.served_boundaries(home).items()
        }
        clients: dict[tuple[str, str], RemoteBoundary] = {}
        for name, spec in specs.items():
            for place in layout.places:
                if layout.reach(_app(name), spec.home, place) == delegation.REMOTE:
                    client = RemoteBoundary(
                        name,
                        spec.interface(),
                        home=spec.home,
                        reads=spec.reads,
                        targets=(server_of[name].target,),
                        deadline=DEADLINE,
                        credentials=None,
                        caller_tier=place,
                    )
                    # Layered tiers read the shared cache first, as in production.
                    layered = layout.kind == "tier"
                    clients[name, place] = delegation.front(client, spec) if layered else client
        return cls(layout=layout, servers=servers, clients=clients, specs=specs, local=local)

    def stop(self) -> None:
        for client in self.clients.values():
            client.close()
        for server in self.servers.values():
            server.server.stop(None)

    def by_place(self, name: str, noted: Callable[[str], None]) -> ByPlace:
        home = self.specs[name].home
        implementations: dict[str | None, object] = {None: self.local[name]}
        for place in self.layout.places:
            how = self.layout.reach(_app(name), home, place)
            if how == delegation.LOCAL:
                implementations[place] = self.local[name]
            elif how == delegation.REMOTE:
                implementations[place] = self.clients[name, place]
            else:
                implementations[place] = OutOfReach(name, self.layout.name(place), noted)
        return ByPlace(name, self.layout, implementations)

    def install(self, monkeypatch: pytest.MonkeyPatch, noted: Callable[[str], None]) -> None:
        """Each boundary by place, its servers' notes cleared, requests entering at the edge."""
        for server in self.servers.values():
            server.servicer.calls.clear()
        for name in self.specs:
            package, attribute = name.split(".")
            module = importlib.import_module(package)
            monkeypatch.setattr(module, attribute, self.by_place(name, noted))
        _enter_at_the_edge(monkeypatch, self.layout)


def _app(boundary: str) -> str:
    return boundary.partition(".")[0]


# --- the guards: what each place must not touch ----------------------------------------


@dataclass
class Guard:
    """What a split deployment refused in a test, which then fails at teardown."""

    layout: Layout
    refused: list[str] = field(default_factory=list)
    broken: ClassVar[str] = "the deployment's boundaries were broken"

    def note(self, what: str) -> None:
        self.refused.append(f"{self.layout.name(self.layout.where.get())}: {what}")

    def verdict(self) -> str | None:
        """Why the test fails, or None."""
        if not self.refused:
            return None
        return f"{self.broken}:\n  " + "\n  ".join(self.refused)

    def check(self) -> None:
        """Fail the running test if anything was refused (at its teardown)."""
        verdict = self.verdict()
        if verdict:
            pytest.fail(verdict)


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
class NoQueries(Guard):
    """In the tiers without a database, every connection behaves like the
    refusing engine's (``arcana.db.refuse``): a cursor that raises
    ``HiddenDatabaseUse`` with the SQL, and no transaction."""

    broken: ClassVar[str] = "the layering was broken (database use or an out-of-reach boundary)"

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


class _NotingRouter(ServiceDataRouter):
    """The ownership router of the service running the call, telling the guard."""

    def __init__(self, note: Callable[[str], None]) -> None:
        super().__init__(here=current_service.get)
        self._note = note

    def check(self, model: type[Model]) -> None:
        try:
            super().check(model)
        except ForeignDataUse as exc:
            self._note(str(exc))
            raise


@dataclass
class ForeignData(Guard):
    """In each service, any ORM use of the other service's models raises
    ``ForeignDataUse`` (``arcana.db.ownership``), as in a real deployment,
    where that service's tables are not in this one's database."""

    broken: ClassVar[str] = (
        "a service used another one's data (its models or an out-of-reach boundary)"
    )

    def install(self, settings: Any) -> None:
        """Route through the ownership router (pytest-django's ``settings``
        fixture: Django re-reads the routers when the setting changes)."""
        settings.DATABASE_ROUTERS = [_NotingRouter(self.note), *settings.DATABASE_ROUTERS]


# --- the edge: where a request enters --------------------------------------------------


def _enter_at_the_edge(monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    """The test client's handler (REST) and the public gRPC server's outermost
    interceptor run their request as code of the place it enters."""
    handle = ClientHandler.__call__

    def call(self: ClientHandler, environ: dict[str, Any]) -> Any:
        with running_in(layout.where, layout.rest_edge(environ.get("PATH_INFO", ""))):
            return handle(self, environ)

    scope = ErrorInterceptor.scope

    @contextmanager
    def edge_scope(
        self: ErrorInterceptor, method: str, context: Any, request: Any
    ) -> Iterator[None]:
        with (
            running_in(layout.where, layout.grpc_edge(method)),
            scope(self, method, context, request),
        ):
            yield

    monkeypatch.setattr(ClientHandler, "__call__", call)
    monkeypatch.setattr(ErrorInterceptor, "scope", edge_scope)


@dataclass
class Deployed:
    """What a split test can inspect: the calls that crossed each hop."""

    split: Split
    guard: Guard

    def calls(self, place: str) -> list[Call]:
        """The calls the internal server of ``place`` served."""
        return self.split.servers[place].servicer.calls

    def crossed(self, place: str) -> list[str]:
        """``boundary.method`` of each call ``place`` served, in order."""
        return [str(call) for call in self.calls(place)]

    def at(self, place: str | None) -> AbstractContextManager[None]:
        """Run a block as code of ``place`` (what the edge does per request)."""
        return running_in(self.split.layout.where, place)


class Layered(Deployed):
    def controller(self) -> AbstractContextManager[None]:
        """Run a block as the controller tier."""
        return self.at(CONTROLLER)


# --- fixtures (imported by tests/conftest.py) --------------------------------------------


@pytest.fixture(scope="session")
def tier_servers() -> Iterator[Split]:
    split = Split.start(LAYERED_LAYOUT)
    yield split
    split.stop()


@pytest.fixture(scope="session")
def service_servers() -> Iterator[Split]:
    split = Split.start(MICROSERVICES_LAYOUT)
    yield split
    split.stop()


@pytest.fixture
def layered(tier_servers: Split, monkeypatch: pytest.MonkeyPatch) -> Iterator[Layered]:
    """This test process as the controller tier of a layered deployment."""
    guard = NoQueries(LAYERED_LAYOUT)
    tier_servers.install(monkeypatch, guard.note)
    guard.install(monkeypatch)
    yield Layered(tier_servers, guard)
    guard.check()


@pytest.fixture
def microservices(
    service_servers: Split, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[Deployed]:
    """This test process as the users and auth services of a microservices deployment."""
    guard = ForeignData(MICROSERVICES_LAYOUT)
    service_servers.install(monkeypatch, guard.note)
    guard.install(settings)
    yield Deployed(service_servers, guard)
    guard.check()


@pytest.fixture(
    params=[
        MONOLITHIC,
        pytest.param(LAYERED, marks=_SPLIT_DB),
        pytest.param(MICROSERVICES, marks=_SPLIT_DB),
    ]
)
def deployment_mode(request: pytest.FixtureRequest) -> str:
    """The mode the test runs in (``every_mode``): monolithic, layered or microservices."""
    mode: str = request.param
    if mode != MONOLITHIC:
        marker = request.node.get_closest_marker("django_db")
        if marker is None or not marker.kwargs.get("transaction"):
            pytest.fail(f"a {mode} test needs django_db(transaction=True): servers have threads")
        request.getfixturevalue(mode)
    return mode
