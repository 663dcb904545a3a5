"""Assembling and running the gRPC servers.

:func:`build_server` is used by ``grpcrunserver`` and by the tests alike, so
tests exercise the production interceptors, health and reflection. With
``internal="service"`` or ``internal="repository"`` it builds a layered-mode
tier's internal server instead (``manage.py tierserver``): that tier's
boundaries (``arcana.core.internal``), health, mutual TLS, and none of the
public services.
:func:`serve` runs one process until SIGTERM/SIGINT; :func:`supervise` runs N
of them on one port (SO_REUSEPORT) and forwards those signals, each worker
optionally also on a port of its own (see :func:`supervise` for why).
"""

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from contextlib import suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import grpc
from asgiref.local import Local, _ThreadCriticalLocal
from django.conf import settings
from django.core.cache import caches
from django.db import connection, connections
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection as reflection_service

from arcana.core import delegation, metrics, tracing
from arcana.core import grpc_compat as compat
from arcana.core.pem import check_private_key, pem_certificates, read_pem
from arcana.grpc.interceptors import CapacityInterceptor, ObserveInterceptor
from arcana.health import dependency_ready
from authn.grpc.servicers import AuthServicer
from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from users.grpc.servicers import UserServicer

logger = logging.getLogger("arcana.grpc")

# Each public service by the app behind it.
_SERVICE_OF_APP = {
    "users": users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    "authn": auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
}
APPLICATION_SERVICES = tuple(_SERVICE_OF_APP.values())


def served_services() -> tuple[str, ...]:
    """The public services this process serves: both, but in microservices
    mode, where each service serves its own app's (the gateway routes by name)."""
    deployment = settings.ARCANA_DEPLOYMENT
    return tuple(name for app, name in _SERVICE_OF_APP.items() if deployment.owns(app))


OVERALL = ""  # the health service's name for "the whole server"


def grpc_handlers(server: Any) -> None:
    """Register the application servicers (``GRPC_FRAMEWORK["ROOT_HANDLERS_HOOK"]``):
    those of :func:`served_services`."""
    served = served_services()
    # The generated registration functions are untyped (grpc_tools makes no stubs).
    if _SERVICE_OF_APP["users"] in served:
        users_pb2_grpc.add_UserServiceServicer_to_server(  # type: ignore[no-untyped-call]
            UserServicer.as_servicer(), server
        )
    if _SERVICE_OF_APP["authn"] in served:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(  # type: ignore[no-untyped-call]
            AuthServicer.as_servicer(), server
        )


@dataclass
class ArcanaServer:
    """A built, bound (not yet started) server and its health servicer.

    While running, a watcher thread checks what this process depends on every
    ``health_interval`` seconds (``arcana.health.dependency_ready``: the
    database, or in layered mode the tier below) and turns health
    NOT_SERVING while it is unreachable, SERVING again once it is back (the
    gRPC twin of ``/readyz``).
    """

    server: grpc.Server
    health: health.HealthServicer
    port: int
    health_interval: float = 2.0
    security: str = "plaintext"  # or "TLS", "mutual TLS"
    services: tuple[str, ...] = APPLICATION_SERVICES
    own_port: int | None = None  # a supervised worker's port of its own, if any
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.server.start()
        self._set_health(serving=True)
        watcher = threading.Thread(target=self._watch, name="grpc-health", daemon=True)
        watcher.start()

    def stop(self, grace: float) -> threading.Event:
        """Health goes NOT_SERVING, new calls are refused, in-flight ones get
        ``grace`` seconds. Returns an event set once everything has finished."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        return self.server.stop(grace)

    def _set_health(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (OVERALL, *self.services):
            self.health.set(name, status)  # ignored once shutdown has begun

    def _watch(self) -> None:
        serving = True
        while not self._stopping.wait(self.health_interval):
            try:
                # A connection broken by an outage stays broken until closed;
                # Django closes it at request boundaries, this thread has none.
                holds_database = settings.ARCANA_DEPLOYMENT.holds_database
                if holds_database:
                    with suppress(Exception):  # the check below reports the outage
                        connection.close_if_unusable_or_obsolete()
                _, ready = dependency_ready()
                if holds_database and not ready:
                    connection.close()
            except Exception:  # the watcher must outlive anything the check throws
                logger.exception("health watcher: dependency check failed")
                ready = False
            if ready != serving:
                self._set_health(serving=ready)
                serving = ready
        connection.close()


@dataclass(frozen=True)
class TlsFiles:
    """PEM contents of the server's certificate chain and key and, for mutual
    TLS, of the CA that signs client certificates.

    Plain bytes, not grpc credentials: ``supervise`` forks its workers, and
    nothing of grpc's core may exist in the parent before that.
    """

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def read(cls, *, cert: str, key: str, client_ca: str | None = None) -> "TlsFiles":
        """Read and check the files; raises :class:`TlsError` saying which one is wrong."""
        files = cls(
            cert_chain=read_pem("certificate", cert),
            private_key=read_pem("key", key),
            client_ca=read_pem("client CA", client_ca) if client_ca else None,
        )
        chain = pem_certificates("certificate", cert, files.cert_chain)
        check_private_key(key=key, pem=files.private_key, cert=cert, certificate=chain[0])
        if client_ca and files.client_ca is not None:
            pem_certificates("client CA", client_ca, files.client_ca)
        return files

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials; with a client CA, clients must present a certificate it signed."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.mutual,
        )


# Server keepalive: a peer that vanished (no FIN: a cut cable, a dead host)
# would otherwise keep its streams, and their slots, for hours. Clients may
# ping at most every 10 s; more often earns GOAWAY after two strikes.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
)


def build_server(
    address: str,
    *,
    max_workers: int,
    max_message_bytes: int,
    reuse_port: bool = False,
    health_interval: float | None = None,
    max_streams: int | None = None,
    max_concurrent_rpcs: int | None = None,
    request_timeout: float | None = None,
    reflection: bool | None = None,
    max_connection_idle: float | None = None,
    max_connection_age: float | None = None,
    max_connection_age_grace: float | None = None,
    tls: TlsFiles | None = None,
    internal: str | None = None,
    own_address: str | None = None,
) -> ArcanaServer:
    """A server on ``address`` with the project's interceptors, servicers,
    health and (unless ``reflection`` is off) reflection.

    ``max_workers`` threads serve unary calls and ``max_streams`` more serve
    streams, which :class:`~arcana.grpc.interceptors.CapacityInterceptor`
    bounds, so streams held open never take the unary calls' threads; grpc
    answers RESOURCE_EXHAUSTED beyond ``max_concurrent_rpcs`` admitted calls.
    Connections are closed after ``max_connection_idle`` seconds without a
    call and after ``max_connection_age`` seconds in any case (their calls get
    ``max_connection_age_grace`` seconds). With ``tls`` the port serves TLS
    only (mutual TLS when it names a client CA); without, plaintext. Options
    left ``None`` come from the ``GRPC_*`` settings. Raises ``ValueError`` for
    limits that do not fit together and ``OSError`` when the address cannot
    be bound. ``own_address`` is a second address to listen on, the same
    way (a supervised worker's port of its own).

    ``internal`` (a tier: ``"service"`` or ``"repository"``) builds that
    tier's internal server: its boundaries only, no authentication
    interceptors (callers are authenticated by mutual TLS from the
    ``ARCANA_INTERNAL_TLS_*`` settings, or plaintext with
    ``ARCANA_INTERNAL_INSECURE=true``), no reflection; ``tls`` must be None.
    """
    max_streams = max_streams or settings.GRPC_MAX_STREAMS
    max_concurrent_rpcs = max_concurrent_rpcs or settings.GRPC_MAX_CONCURRENT_RPCS
    if max_concurrent_rpcs <= max_streams:
        raise ValueError(
            f"max_concurrent_rpcs ({max_concurrent_rpcs}) must exceed max_streams "
            f"({max_streams}), or open streams would leave no room for unary calls."
        )
    reflection = settings.GRPC_REFLECTION if reflection is None else reflection
    if internal is not None:
        if tls is not None:
            raise ValueError("an internal server takes its TLS from ARCANA_INTERNAL_TLS_*")
        reflection = False
    compat.ensure_grpc_logging()
    compat.drop_duplicate_request_signals()
    keep_caches_per_thread()
    delegation.connect()  # the peers' clients: bad TLS settings stop the server here
    observe = None
    if settings.METRICS_ENABLED or settings.REQUEST_LOG:
        observe = ObserveInterceptor(
            "public" if internal is None else "internal",
            count=settings.METRICS_ENABLED,
            log=settings.REQUEST_LOG,
        )
    # Observation outermost (what capacity refuses is counted too), applied by
    # the capacity interceptor in the handler it rebuilds anyway.
    capacity = CapacityInterceptor(
        max_streams=max_streams,
        request_timeout=request_timeout or settings.GRPC_REQUEST_TIMEOUT,
        observe=observe,
    )
    interceptors: list[Any] = [capacity] if internal else [capacity, *compat.server_interceptors()]
    if tracing.provider() is not None:  # outermost: the log line names the trace
        from opentelemetry.instrumentation.grpc import server_interceptor

        interceptors.insert(0, server_interceptor(tracer_provider=tracing.provider()))  # type: ignore[no-untyped-call]
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=max_workers + max_streams, thread_name_prefix="grpc-worker"
        ),
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # grpc enables SO_REUSEPORT by default; with one process that would let
            # a second server silently share (and steal calls from) a busy port.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_connection_idle_ms", _ms(max_connection_idle, "IDLE")),
            ("grpc.max_connection_age_ms", _ms(max_connection_age, "AGE")),
            ("grpc.max_connection_age_grace_ms", _ms(max_connection_age_grace, "AGE_GRACE")),
            *KEEPALIVE_OPTIONS,
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    services: tuple[str, ...]
    if internal is None:
        grpc_handlers(server)
        services, credentials, security = served_services(), None, "plaintext"
        if tls is not None:
            credentials = tls.credentials()
            security = "mutual TLS" if tls.mutual else "TLS"
    else:
        from arcana.core import internal as hop  # grpc's internal protos: tiers only

        owned = settings.ARCANA_DEPLOYMENT.owned_app  # a microservice serves its own app
        hop.add_boundary_servicer(
            server, internal, delegation.served_boundaries(internal, app=owned)
        )
        services = (hop.SERVICE_NAMES[internal],)
        credentials = hop.server_credentials()
        security = "plaintext" if credentials is None else "mutual TLS"
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection:
        reflection_service.enable_server_reflection(
            (*services, health.SERVICE_NAME, reflection_service.SERVICE_NAME), server
        )
    port = _listen(server, address, credentials)
    own_port = None if own_address is None else _listen(server, own_address, credentials)
    return ArcanaServer(
        server=server,
        health=health_servicer,
        port=port,
        health_interval=health_interval or settings.GRPC_HEALTH_INTERVAL,
        security=security,
        services=services,
        own_port=own_port,
    )


def _listen(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpc >= 1.50 raises instead of returning 0
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def _ms(seconds: float | None, setting: str) -> int:
    """Seconds (or the ``GRPC_MAX_CONNECTION_<setting>`` setting) as whole milliseconds."""
    value = getattr(settings, f"GRPC_MAX_CONNECTION_{setting}") if seconds is None else seconds
    return max(1, round(value * 1000))


def keep_caches_per_thread() -> None:
    """Keep Django's cache objects per thread, as under WSGI, not per context.

    Django stores them in an asgiref ``Local`` keyed by execution context;
    grpc runs every call in a fresh, empty ``contextvars.Context``, so each
    call would build its cache backends anew (about 30 us) and close them at
    ``request_finished``. A gRPC server process runs calls on plain threads
    with no event loop, where thread-local storage is what Django itself uses
    for database connections.
    """
    # _connections is BaseConnectionHandler's storage (django/utils/connection.py).
    handler: Any = caches
    if not isinstance(handler._connections, _ThreadCriticalLocal):
        handler._connections = Local(thread_critical=True)


def _on_shutdown_signals(handler: Callable[[int], None]) -> None:
    def receive(signum: int, frame: FrameType | None) -> None:
        handler(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, receive)


def serve(
    address: str,
    *,
    max_workers: int,
    max_message_bytes: int,
    grace: float,
    reuse_port: bool = False,
    on_ready: Callable[[ArcanaServer], None] | None = None,
    expose_metrics: bool = True,
    **limits: Any,
) -> None:
    """Run one server until SIGTERM or SIGINT, then shut down gracefully.

    ``limits`` are :func:`build_server`'s other options. With
    ``expose_metrics`` (a worker of :func:`supervise` leaves it to its
    parent) and ``GRPC_METRICS_PORT`` set, the metrics are served there.
    Must run on the main thread (signal handlers).
    """
    metrics_server = _metrics_port() if expose_metrics else None
    stop_requested = threading.Event()
    _on_shutdown_signals(lambda signum: stop_requested.set())
    arcana = build_server(
        address,
        max_workers=max_workers,
        max_message_bytes=max_message_bytes,
        reuse_port=reuse_port,
        **limits,
    )
    arcana.start()
    # tests/support/stack.py waits for "serving gRPC on" in this line.
    logger.info(
        "pid %d: serving gRPC on %s (port %d, %s)%s",
        os.getpid(),
        address,
        arcana.port,
        arcana.security,
        "" if arcana.own_port is None else f", and on its own port {arcana.own_port}",
    )
    if on_ready is not None:
        on_ready(arcana)
    while not stop_requested.wait(timeout=1.0):
        pass  # a timed wait keeps the main thread responsive to signals
    logger.info("pid %d: shutting down (grace %.1fs)", os.getpid(), grace)
    arcana.stop(grace).wait()
    connections.close_all()
    if metrics_server is not None:
        metrics_server.shutdown()
    logger.info("pid %d: stopped", os.getpid())


def _metrics_port() -> Any:
    """The metrics server on ``GRPC_METRICS_HOST:GRPC_METRICS_PORT``, or None
    when no port is set (or metrics are off)."""
    port = settings.GRPC_METRICS_PORT
    if port is None or not settings.METRICS_ENABLED:
        return None
    from arcana.observe.server import serve_metrics

    return serve_metrics(settings.GRPC_METRICS_HOST, port)


def _child_main(address: str, own_address: str | None, options: dict[str, Any]) -> None:
    # Run in a forked child: nothing of grpc's core exists in the parent yet,
    # which is what gRPC requires of forking (see its multiprocessing example).
    # Until serve() installs its own handlers, a signal must stop this child,
    # not set the parent's (copied, unwatched) event.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    metrics.reset()  # count into this child's own file, from zero
    serve(address, reuse_port=True, expose_metrics=False, own_address=own_address, **options)


def supervise(
    address: str,
    *,
    processes: int,
    grace: float,
    on_ready: Callable[[list[int]], None] | None = None,
    restart_limit: int = 5,
    own_port_base: int | None = None,
    **options: Any,
) -> int:
    """Run ``processes`` servers on one port and keep them running.

    With ``own_port_base``, worker *i* (from 0) also listens on
    ``own_port_base + i`` of the same host (a restarted worker takes its
    predecessor's), so that a balancer that spreads calls (a gRPC client
    with the ``round_robin`` policy over those addresses, nginx ``grpc_pass``
    to an upstream of them) spreads them evenly over the workers. On the
    shared port the kernel spreads *connections*: it hashes each one to a
    worker, and HTTP/2 connections are long-lived, so 8 clients land 6/2 or
    worse in about one run in four (29 %, a binomial split of 8). A classic BPF
    program (``SO_ATTACH_REUSEPORT_CBPF``, the only kind an unprivileged
    process may attach) cannot do better: it sees the SYN and a few
    ancillary words (CPU, flow hash, a random number) but keeps no state
    between connections, so it can pick by hash, CPU or chance, never
    round-robin or least-connections; eBPF ``SK_REUSEPORT`` with a map could,
    but needs CAP_BPF. ``GRPC_MAX_CONNECTION_AGE`` re-hashes connections over
    time, which evens calls out only over many connection lifetimes.

    SIGTERM/SIGINT are forwarded to every child; each drains within ``grace``.
    A child that dies on its own is restarted, up to ``restart_limit`` times a
    minute; beyond that the whole group stops and the exit status is 1.
    Returns the exit status.

    The children count their metrics into ``PROMETHEUS_MULTIPROC_DIR`` (a
    temporary directory, removed at the end, unless set) and this process
    serves their sum on the metrics port.
    """
    own_directory = not metrics.multiprocess_dir()
    directory = tempfile.mkdtemp(prefix="arcana-metrics-") if own_directory else ""
    try:
        if own_directory:
            metrics.enable_multiprocess(directory)
        else:
            metrics.clear_multiprocess_dir(metrics.multiprocess_dir())
        return _supervise(
            address,
            processes=processes,
            grace=grace,
            on_ready=on_ready,
            restart_limit=restart_limit,
            own_port_base=own_port_base,
            **options,
        )
    finally:
        if own_directory:
            metrics.disable_multiprocess()
            shutil.rmtree(directory, ignore_errors=True)


def _supervise(
    address: str,
    *,
    processes: int,
    grace: float,
    on_ready: Callable[[list[int]], None] | None,
    restart_limit: int,
    own_port_base: int | None,
    **options: Any,
) -> int:
    connections.close_all()  # children must not share the parent's sockets
    context = multiprocessing.get_context("fork")
    children: list[Any] = []
    stop_requested = threading.Event()
    restarts: list[float] = []

    host = address.rpartition(":")[0]

    def spawn(index: int) -> Any:
        own = None if own_port_base is None else f"{host}:{own_port_base + index}"
        child = context.Process(
            target=_child_main,
            args=(address, own, {"grace": grace, **options}),
            name="grpc-server",
            daemon=False,
        )
        child.start()
        return child

    _on_shutdown_signals(lambda signum: stop_requested.set())
    children = [spawn(index) for index in range(processes)]
    metrics_server = _metrics_port()  # after the forks: no thread of it in a child
    if on_ready is not None:
        on_ready([child.pid for child in children])
    status = 0
    while not stop_requested.wait(timeout=0.5):
        for index, child in enumerate(children):
            if child.is_alive():
                continue
            logger.error("worker pid %s exited with %s; restarting", child.pid, child.exitcode)
            if child.pid is not None:
                metrics.process_dead(child.pid)
            now = time.monotonic()
            restarts[:] = [moment for moment in restarts if now - moment < 60] + [now]
            if len(restarts) > restart_limit:
                logger.error("workers keep dying; stopping")
                status = 1
                stop_requested.set()
                break
            children[index] = spawn(index)

    for child in children:
        if child.is_alive() and child.pid is not None:
            with suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            logger.error("worker pid %s ignored SIGTERM; killing it", child.pid)
            child.kill()
            child.join()
            status = 1
        elif child.exitcode not in (0, None) and status == 0 and child.exitcode != -signal.SIGTERM:
            status = 1
    if metrics_server is not None:
        metrics_server.shutdown()
    return status
