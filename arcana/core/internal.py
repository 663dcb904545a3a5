"""The internal hops: a boundary's Protocol called over gRPC (layered mode).

``protos/arcana/internal/v1/boundary.proto`` has one generic method per tier,
``Service.Invoke`` (the controller tier calls the service tier) and
``Repository.Invoke`` (the service tier calls the repository tier), each
``Invoke(boundary, method, JSON arguments)`` answered with a JSON result or a
structured domain error (``arcana.core.wire``). Two halves:

- :class:`RemoteBoundary` (the calling tier): an object with exactly the
  methods of a Protocol (``UserServiceInterface``, ``UserRepositoryInterface``),
  each a call across the hop, checked against that Protocol when it is built.
  Every call has a deadline (``settings.ARCANA_DEPLOYMENT.internal_deadline``,
  one budget shared by the attempts), carries the request id and acting user
  when known and the caller's tier; a *read* (named explicitly by the app) is
  tried once more on ``UNAVAILABLE``, on the next target. ``UNAVAILABLE`` and
  ``DEADLINE_EXCEEDED`` become :class:`~arcana.core.exceptions.Unavailable`
  (503 / ``UNAVAILABLE`` at the edge); a domain error is raised again as its
  own class, so the public answer is the same in every mode.
- :class:`BoundaryServicer` (the called tier): dispatches only to the methods
  its boundaries' Protocols name, inside Django's request boundaries
  (``arcana.core.context.request_boundaries``, as the public server's
  ``ErrorInterceptor`` does), and logs with the caller's metadata. It is
  never added to the public server (``arcana.grpc.server``).

Transport security: mutual TLS from ``ARCANA_INTERNAL_TLS_CERT`` / ``_KEY`` /
``_CA``; plaintext only with ``ARCANA_INTERNAL_INSECURE=true`` (warned once).

This is the one core module that imports grpc and the generated protos below
the controllers (``tests/test_layout.py`` exempts it by name): the hop is the
transport a boundary's remote implementation is made of.
"""

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from arcana.core import tracing
from arcana.core.context import acting_user, call_context, request_boundaries, request_id
from arcana.core.exceptions import (
    DATABASE_DOWN_ERRORS,
    ApplicationError,
    Unavailable,
    database_error_as_domain,
)
from arcana.core.pem import TlsError, check_private_key, pem_certificates
from arcana.core.wire import Codec, Failure, WireError, error_from, failure_of
from protos.arcana.internal.v1 import boundary_pb2, boundary_pb2_grpc

logger = logging.getLogger("arcana.internal")

REQUEST_ID = "x-request-id"
ACTOR = "x-arcana-actor"
CALLER_TIER = "x-arcana-caller-tier"
_CHANNEL_OPTIONS = (
    # A dns:/// target resolving to several replicas is balanced per call.
    ("grpc.lb_policy_name", "round_robin"),
    # Retries are ours (reads only, once); gRPC's own would retry writes too.
    ("grpc.enable_retries", 0),
    # gRPC's reconnect backoff grows to 120 s: a peer tier back after an
    # outage would stay unreachable (calls UNAVAILABLE, health NOT_SERVING)
    # for up to two minutes. Peers are on the same network: retry every second.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


class RemoteCallFailed(ApplicationError):
    """The hop itself failed (a refused method, an undecodable answer): a
    deployment fault, reported as an internal error."""

    code = "internal_call_failed"
    default_message = "Something went wrong."


# --- credentials -------------------------------------------------------------------

_TLS_SETTINGS = ("ARCANA_INTERNAL_TLS_CERT", "ARCANA_INTERNAL_TLS_KEY", "ARCANA_INTERNAL_TLS_CA")
_warned_plaintext = threading.Event()


def _tls_files() -> tuple[bytes, bytes, bytes] | None:
    """(certificate chain, key, CA) from settings, or None for plaintext."""
    paths = [str(getattr(settings, name, "") or "") for name in _TLS_SETTINGS]
    if not any(paths):
        deployment = getattr(settings, "ARCANA_DEPLOYMENT", None)
        if not getattr(deployment, "internal_insecure", False):
            raise ImproperlyConfigured(
                "internal calls need mutual TLS (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA) "
                "or ARCANA_INTERNAL_INSECURE=true"
            )
        if not _warned_plaintext.is_set():
            _warned_plaintext.set()
            logger.warning("internal calls are in plaintext (ARCANA_INTERNAL_INSECURE=true)")
        return None
    if not all(paths):
        missing = next(name for name, path in zip(_TLS_SETTINGS, paths, strict=True) if not path)
        raise ImproperlyConfigured(f"{missing} must be set with the other internal TLS settings")
    contents: list[bytes] = []
    for name, path in zip(_TLS_SETTINGS, paths, strict=True):
        try:
            contents.append(Path(path).read_bytes())
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}={path!r}: {exc.strerror}") from None
    (cert, key, ca), (chain, private_key, authority) = paths, contents
    # grpc would take junk here, then fail to listen or to connect without saying why.
    try:
        certificate = pem_certificates("certificate", cert, chain)[0]
    except TlsError as exc:
        raise ImproperlyConfigured(f"ARCANA_INTERNAL_TLS_CERT: {exc}") from None
    try:
        check_private_key(key=key, pem=private_key, cert=cert, certificate=certificate)
    except TlsError as exc:
        raise ImproperlyConfigured(f"ARCANA_INTERNAL_TLS_KEY: {exc}") from None
    try:
        pem_certificates("CA", ca, authority)
    except TlsError as exc:
        raise ImproperlyConfigured(f"ARCANA_INTERNAL_TLS_CA: {exc}") from None
    return chain, private_key, authority


def channel_credentials() -> grpc.ChannelCredentials | None:
    """The client's credentials from settings (None: plaintext, allowed)."""
    files = _tls_files()
    if files is None:
        return None
    chain, key, ca = files
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=chain
    )


def server_credentials() -> grpc.ServerCredentials | None:
    """The internal server's credentials from settings: clients must present a
    certificate the CA signed (None: plaintext, allowed)."""
    files = _tls_files()
    if files is None:
        return None
    chain, key, ca = files
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=ca, require_client_auth=True
    )


# --- the client ------------------------------------------------------------------


# Where each boundary lives (its home tier) -> the generated stub and servicer
# registration of that tier's gRPC service.
SERVICE = "service"
REPOSITORY = "repository"
_STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    SERVICE: boundary_pb2_grpc.ServiceStub,
    REPOSITORY: boundary_pb2_grpc.RepositoryStub,
}
_ADD_SERVICER: dict[str, Callable[[Any, grpc.Server], None]] = {
    SERVICE: boundary_pb2_grpc.add_ServiceServicer_to_server,
    REPOSITORY: boundary_pb2_grpc.add_RepositoryServicer_to_server,
}
# The gRPC service name of each tier's internal server (its health check name).
SERVICE_NAMES: dict[str, str] = {
    home: boundary_pb2.DESCRIPTOR.services_by_name[name].full_name
    for home, name in ((SERVICE, "Service"), (REPOSITORY, "Repository"))
}


def _home(home: str) -> str:
    if home not in _STUBS:
        raise ValueError(f"no internal service for the {home!r} tier")
    return home


class Replicas:
    """Per-call round robin over the channels to one tier's replicas, passing
    over those in ``TRANSIENT_FAILURE`` while another is not: a replica that
    died gets no calls (they would fail at once) until its channel connects
    again, which gRPC keeps trying every second at most (``_CHANNEL_OPTIONS``).
    When every channel is failing, each is still tried in turn, so a call
    fails fast and the tier below's recovery is noticed."""

    # grpc's connectivity poller wakes every 0.2 s; a channel closed under it
    # makes it raise ("Cannot monitor channel state: Channel closed!").
    _POLLER_EXIT_SECONDS = 0.5

    def __init__(self, channels: Sequence[grpc.Channel]) -> None:
        self._channels = tuple(channels)
        self._count = len(self._channels)
        self._states = [grpc.ChannelConnectivity.IDLE] * self._count
        # One C call under the GIL: threads sharing this object need no lock for it.
        self._next_turn = itertools.count().__next__
        self._lock = threading.Lock()
        self._watchers = [functools.partial(self._changed, index) for index in range(self._count)]
        self._watching = False

    def _watch(self) -> None:
        # On first use, not when built: boundaries are built at start-up, and
        # grpcrunserver --workers forks after that; the watching (a poller
        # thread per channel, connections) belongs in the process that calls.
        with self._lock:
            if self._watching:
                return
            self._watching = True
            for channel, watcher in zip(self._channels, self._watchers, strict=True):
                # try_to_connect: connect every replica now, not on its first call.
                channel.subscribe(watcher, try_to_connect=True)

    def close(self) -> None:
        """Stop watching the channels and close them once grpc's poller has let go."""
        with self._lock:
            watching, self._watching = self._watching, True  # never again
        if not watching:
            for channel in self._channels:
                channel.close()
            return
        for channel, watcher in zip(self._channels, self._watchers, strict=True):
            channel.unsubscribe(watcher)

        def close_all() -> None:
            for channel in self._channels:
                channel.close()

        closing = threading.Timer(self._POLLER_EXIT_SECONDS, close_all)
        closing.daemon = True
        closing.start()

    def _changed(self, index: int, state: grpc.ChannelConnectivity) -> None:
        self._states[index] = state

    def states(self) -> list[grpc.ChannelConnectivity]:
        """Each channel's connectivity, as last reported."""
        return list(self._states)

    def pick(self, avoid: int | None = None) -> int:
        """The index of the channel the next call goes to; not ``avoid`` (the
        one a retried call just failed on) while there is another."""
        if self._count == 1:  # nothing to choose from: no watching either
            return 0
        if not self._watching:
            self._watch()
        start = self._next_turn()
        fallback = -1
        for step in range(self._count):
            index = (start + step) % self._count
            if index == avoid:
                continue
            if self._states[index] is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                return index
            if fallback < 0:
                fallback = index
        return fallback


class RemoteBoundary:
    """``interface``'s methods, each an internal call to ``boundary`` on the
    tier ``home`` (``"service"`` or ``"repository"``). ``reads`` names the
    methods safe to retry."""

    def __init__(
        self,
        boundary: str,
        interface: type,
        *,
        home: str = REPOSITORY,
        reads: Collection[str],
        targets: Sequence[str],
        deadline: float,
        credentials: grpc.ChannelCredentials | None,
        caller_tier: str = "",
    ) -> None:
        self._codec = Codec(interface)
        unknown = set(reads) - set(self._codec.methods)
        if unknown:
            raise TypeError(f"{interface.__name__} has no method {sorted(unknown)[0]!r} to read")
        if not targets:
            raise ImproperlyConfigured(f"{boundary}: no {home} tier targets")
        stub = _STUBS[_home(home)]
        self.boundary = boundary
        self.home = home
        self._reads = frozenset(reads)
        self._deadline = deadline
        self._channels = [
            grpc.secure_channel(target, credentials, options=_CHANNEL_OPTIONS)
            if credentials is not None
            else grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
            for target in targets
        ]
        self._replicas = Replicas(self._channels)
        self._stubs: list[Any] = [stub(channel) for channel in self._channels]
        self._caller: tuple[tuple[str, str], ...] = ((CALLER_TIER, caller_tier),)
        for name in self._codec.methods:
            setattr(self, name, self._method(name))

    @classmethod
    def from_settings(
        cls, boundary: str, interface: type, *, app: str, home: str, reads: Collection[str]
    ) -> "RemoteBoundary":
        deployment = settings.ARCANA_DEPLOYMENT
        return cls(
            boundary,
            interface,
            home=home,
            reads=reads,
            targets=deployment.internal_targets(app=app, home=home),
            deadline=deployment.internal_deadline,
            credentials=channel_credentials(),
            caller_tier=deployment.name,
        )

    def close(self) -> None:
        self._replicas.close()

    def __repr__(self) -> str:
        return f"<RemoteBoundary {self.boundary} on the {self.home} tier>"

    def _method(self, name: str) -> Callable[..., Any]:
        def call(**arguments: Any) -> Any:
            return self._call(name, arguments)

        call.__name__ = call.__qualname__ = name
        return call

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        request, actor = request_id.get(), acting_user.get()
        metadata: tuple[tuple[str, str], ...] = self._caller
        if request:
            metadata += ((REQUEST_ID, request),)
        if actor:
            metadata += ((ACTOR, actor),)
        return metadata

    def _call(self, name: str, arguments: Mapping[str, Any]) -> Any:
        request = boundary_pb2.InvokeRequest(
            boundary=self.boundary,
            method=name,
            arguments=self._codec.encode_arguments(name, arguments),
        )
        metadata = self._metadata()
        if tracing.enabled():
            context: list[tuple[str, str]] = []
            with tracing.client_span(f"{self.boundary}.{name}", context):
                return self._attempts(name, request, (*metadata, *context))
        return self._attempts(name, request, metadata)

    def _attempts(
        self,
        name: str,
        request: boundary_pb2.InvokeRequest,
        metadata: tuple[tuple[str, str], ...],
    ) -> Any:
        attempts = 2 if name in self._reads else 1
        ends = time.monotonic() + self._deadline
        tried: int | None = None
        for attempt in range(1, attempts + 1):
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise Unavailable()
            # The retry goes elsewhere: other calls move the turn on meanwhile,
            # and the failed replica's channel may not have said so yet.
            failed, tried = tried, self._replicas.pick(avoid=tried)
            try:
                reply = self._stubs[tried].Invoke(
                    request,
                    timeout=remaining,
                    metadata=metadata,
                    # A retry on another replica may wait, within the deadline,
                    # for it to connect: it may be reconnecting (restarted a
                    # moment ago, or in its backoff). A retry on the one that
                    # just failed (the only one) must not: a tier that is down
                    # answers at once.
                    wait_for_ready=failed is not None and failed != tried,
                )
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < attempts:
                    logger.info("%s.%s unavailable; retrying once", self.boundary, name)
                    continue
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    logger.warning("%s.%s: %s", self.boundary, name, code.name)
                    raise Unavailable() from None
                logger.error("%s.%s refused: %s %s", self.boundary, name, code, exc.details())
                raise RemoteCallFailed() from None
            return self._answer(name, reply)
        raise Unavailable()  # pragma: no cover - the loop returns or raises

    def _answer(self, name: str, reply: boundary_pb2.InvokeReply) -> Any:
        if reply.WhichOneof("outcome") == "failure":
            failure = reply.failure
            raise error_from(
                Failure(
                    kind=failure.kind,
                    code=failure.code,
                    message=failure.message,
                    errors={item.field: list(item.messages) for item in failure.errors},
                    retry_after=failure.retry_after if failure.HasField("retry_after") else None,
                )
            )
        try:
            return self._codec.decode_result(name, reply.result)
        except WireError as exc:
            logger.error("%s.%s answered an undecodable result: %s", self.boundary, name, exc)
            raise RemoteCallFailed() from None


# --- the tier below's health ------------------------------------------------------

_health_channels: dict[tuple[str, ...], list[grpc.Channel]] = {}
_health_lock = threading.Lock()
HEALTH_TIMEOUT = 1.0


def _channels_to(targets: tuple[str, ...]) -> list[grpc.Channel]:
    with _health_lock:
        found = _health_channels.get(targets)
        if found is None:
            credentials = channel_credentials()
            found = [
                grpc.secure_channel(target, credentials, options=_CHANNEL_OPTIONS)
                if credentials is not None
                else grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
                for target in targets
            ]
            _health_channels[targets] = found
        return found


def _serving(home: str, targets: tuple[str, ...]) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    timeout = min(HEALTH_TIMEOUT, settings.ARCANA_DEPLOYMENT.internal_deadline)
    request = health_pb2.HealthCheckRequest(service=SERVICE_NAMES[_home(home)])
    for channel in _channels_to(targets):
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
        except grpc.RpcError:
            continue
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return True
    return False


def tier_serving(home: str) -> bool:
    """Whether tier ``home`` answers SERVING for its internal service on at
    least one of this process's targets for it (gRPC health ``Check``, within
    ``HEALTH_TIMEOUT`` or the internal deadline, whichever is shorter)."""
    deployment = settings.ARCANA_DEPLOYMENT
    targets = deployment.service_targets if home == SERVICE else deployment.repository_targets
    return _serving(home, targets)


def peer_serving(app: str) -> bool:
    """Whether the microservice owning ``app`` answers SERVING on its internal
    server (as :func:`tier_serving`)."""
    return _serving(SERVICE, settings.ARCANA_DEPLOYMENT.internal_targets(app=app, home=SERVICE))


# --- the server ------------------------------------------------------------------


def _failure_message(failure: Failure) -> boundary_pb2.Failure:
    message = boundary_pb2.Failure(
        kind=failure.kind,
        code=failure.code,
        message=failure.message,
        errors=[
            boundary_pb2.FieldError(field=key, messages=messages)
            for key, messages in failure.errors.items()
        ],
    )
    if failure.retry_after is not None:
        message.retry_after = failure.retry_after
    return message


_EMPTY = boundary_pb2.InvokeReply()  # answered with an error status; never mutated


class BoundaryServicer:
    """Serves ``boundaries``: name (``"users.repo"``) -> (Protocol, local
    implementation). Only the Protocol's methods are reachable. The same
    class answers ``Service.Invoke`` and ``Repository.Invoke``."""

    def __init__(self, boundaries: Mapping[str, tuple[type, object]]) -> None:
        self._served = {
            name: (Codec(interface), implementation)
            for name, (interface, implementation) in boundaries.items()
        }

    def Invoke(
        self, request: boundary_pb2.InvokeRequest, context: grpc.ServicerContext
    ) -> boundary_pb2.InvokeReply:
        served = self._served.get(request.boundary)
        if served is None or request.method not in served[0].methods:
            logger.warning("refused internal call to %s.%s", request.boundary, request.method)
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"no method {request.boundary}.{request.method}"
            )
        codec, implementation = served
        request_id = actor = caller_tier = None
        metadata = context.invocation_metadata()
        for key, value in metadata:
            if isinstance(value, str):
                if key == REQUEST_ID:
                    request_id = value
                elif key == ACTOR:
                    actor = value
                elif key == CALLER_TIER:
                    caller_tier = value
        call = _Call(request.boundary, request.method, request_id, actor, caller_tier)
        with request_boundaries(self.__class__), call_context(request=request_id, actor=actor):
            if tracing.enabled():
                with tracing.server_span(f"{call.boundary}.{call.method}", metadata):
                    reply, status = self._invoke(codec, implementation, request, call)
            else:
                reply, status = self._invoke(codec, implementation, request, call)
        if status is not None:
            context.abort(*status)
        return reply

    def _invoke(
        self,
        codec: Codec,
        implementation: object,
        request: boundary_pb2.InvokeRequest,
        call: "_Call",
    ) -> tuple[boundary_pb2.InvokeReply, tuple[grpc.StatusCode, str] | None]:
        method = call.method
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("internal call %s.%s", call.boundary, method, extra=call.extra())
        try:
            arguments = codec.decode_arguments(method, request.arguments)
        except WireError as exc:
            name = f"{call.boundary}.{method}"
            return _EMPTY, (grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {exc}")
        try:
            result = getattr(implementation, method)(**arguments)
        except ApplicationError as exc:
            return boundary_pb2.InvokeReply(failure=_failure_message(failure_of(exc))), None
        except DATABASE_DOWN_ERRORS as exc:
            # As in monolithic mode: the caller answers 503 / UNAVAILABLE.
            failure = failure_of(database_error_as_domain(exc))
            return boundary_pb2.InvokeReply(failure=_failure_message(failure)), None
        except Exception:
            logger.exception(
                "internal call %s.%s failed", call.boundary, method, extra=call.extra()
            )
            return _EMPTY, (grpc.StatusCode.INTERNAL, "internal error")
        return boundary_pb2.InvokeReply(result=codec.encode_result(method, result)), None


class _Call(NamedTuple):
    """What one internal call names, and the caller's metadata (absent: None)."""

    boundary: str
    method: str
    request_id: str | None
    acting_user: str | None
    caller_tier: str | None

    def extra(self) -> dict[str, str | None]:
        """The log record's fields for this call (built only for a line that is written)."""
        return {
            "request_id": self.request_id,
            "acting_user": self.acting_user,
            "caller_tier": self.caller_tier,
        }


def add_boundary_servicer(
    server: grpc.Server, home: str, boundaries: Mapping[str, tuple[type, object]]
) -> BoundaryServicer:
    """Serve ``boundaries`` as tier ``home``'s internal gRPC service on
    ``server`` (an internal server, never the public one)."""
    servicer = BoundaryServicer(boundaries)
    _ADD_SERVICER[_home(home)](servicer, server)
    return servicer
