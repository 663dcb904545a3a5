"""Server interceptors: what DRF's request cycle does for REST, done for gRPC.

``ErrorInterceptor`` (outermost) opens and closes the request the way Django
does (``request_started`` / ``request_finished``: stale database connections
closed, caches released; only where the process holds a database,
``arcana.core.context.request_boundaries``) and is the single point where exceptions become
statuses (``arcana.grpc.errors``). ``AuthInterceptor`` throttles the methods
the apps declare public and authenticates every other one with the function
``settings.ARCANA_AUTHENTICATOR`` names, making the caller available to
servicers (``arcana.core.grpc``).
``DecodeInterceptor`` (innermost) turns request bytes that do not decode into
``INVALID_ARGUMENT`` once the caller is authenticated, as REST answers a
malformed body with 400 after 401.

Interceptors choose handlers on grpc's polling thread, so nothing slow (no
database, no cache) happens in ``intercept_service``: the work is wrapped
around the handler's behaviour and runs on the worker thread with the RPC.
Health and reflection are left alone by these three.

``CapacityInterceptor`` (outermost of all, installed by ``build_server`` with
the server's limits) bounds what calls held open can take: see its docstring.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from arcana.core import metrics, tracing
from arcana.core.context import (
    CallRecord,
    accept_request_id,
    call_context,
    call_record,
    read_ahead_announce,
    request_boundaries,
)
from arcana.core.exceptions import InvalidInput, Throttled
from arcana.core.grpc import authenticated_as, client_address, public_methods, read_ahead_of
from arcana.core.principal import authenticator_load
from arcana.core.throttling import ScopedThrottle
from arcana.grpc.errors import failure_of
from arcana.observe.logs import request_line

# Infrastructure that must answer even when the application cannot.
UNGUARDED_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

if TYPE_CHECKING:  # grpc's classes are generic only in the stubs
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    # (context, the request message of a unary-request call, else None)
    Scope: TypeAlias = Callable[[grpc.ServicerContext, Any], AbstractContextManager[None]]
    Behaviour: TypeAlias = Callable[[Any, grpc.ServicerContext], Any]


def _service_of(method: str) -> str:
    return method.lstrip("/").partition("/")[0]


def _rebuilt(
    handler: Handler,
    adapt: Callable[[Behaviour, bool, bool], Behaviour],
    request_deserializer: Callable[[bytes], Any] | None,
) -> Handler:
    """``handler`` again, of the same kind, with ``adapt(behaviour, request_streaming,
    response_streaming)`` as its behaviour and ``request_deserializer`` as its own.

    grpc keeps a handler's kind in which of its four behaviours is set, and
    offers no way to replace one: every change is a new handler of that kind.
    """
    codecs: dict[str, Any] = {
        "request_deserializer": request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            adapt(handler.unary_unary, False, False), **codecs
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            adapt(handler.unary_stream, False, True), **codecs
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            adapt(handler.stream_unary, True, False), **codecs
        )
    assert handler.stream_stream is not None  # one of the four is always set
    return grpc.stream_stream_rpc_method_handler(adapt(handler.stream_stream, True, True), **codecs)


def _wrap(handler: Handler, scope: Scope) -> Handler:
    """The same handler with ``scope`` around its behaviour, whatever its kind.

    Streaming responses keep the scope open until the stream ends.
    """

    def unary_response(behaviour: Behaviour, request_streaming: bool) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            with scope(context, None if request_streaming else request):
                return behaviour(request, context)

        return run

    def stream_response(behaviour: Behaviour, request_streaming: bool) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with scope(context, None if request_streaming else request):
                yield from behaviour(request, context)

        return run

    def adapt(behaviour: Behaviour, request_streaming: bool, response_streaming: bool) -> Behaviour:
        wrap = stream_response if response_streaming else unary_response
        return wrap(behaviour, request_streaming)

    return _rebuilt(handler, adapt, handler.request_deserializer)


class _GuardingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps every application handler in :meth:`scope`."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or _service_of(method) in UNGUARDED_SERVICES:
            return handler
        return _wrap(handler, lambda context, request: self.scope(method, context, request))

    def scope(
        self, method: str, context: grpc.ServicerContext, request: Any
    ) -> AbstractContextManager[None]:
        """What runs around the call; ``request``: its message when it has exactly
        one (None for request streams, or :data:`UNDECODABLE`)."""
        raise NotImplementedError


REQUEST_ID = "x-request-id"


class ErrorInterceptor(_GuardingInterceptor):
    """Django's request boundaries, the request id (the caller's
    ``x-request-id`` metadata when usable, else a new one; sent back as
    initial metadata and forwarded on internal hops), and the one
    exception -> status mapping."""

    @contextmanager
    def scope(self, method: str, context: grpc.ServicerContext, request: Any) -> Iterator[None]:
        sent = [value for key, value in context.invocation_metadata() or () if key == REQUEST_ID]
        rid = accept_request_id(sent[0] if sent and isinstance(sent[0], str) else None)
        context.send_initial_metadata(((REQUEST_ID, rid),))
        try:
            with request_boundaries(self.__class__), call_context(request=rid):
                yield
        except Exception as exc:
            _abort(context, exc)


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    chosen = getattr(context, "code", lambda: None)()
    if chosen is not None and chosen != grpc.StatusCode.OK:
        # The code already chose a status (context.abort, or set_code then
        # raise): keep it rather than hiding it behind INTERNAL.
        raise exc
    failure = failure_of(exc)
    if failure.trailing_metadata:
        context.set_trailing_metadata(failure.trailing_metadata)
    context.abort(failure.code, failure.details)


class AuthInterceptor(_GuardingInterceptor):
    """Throttles the public methods (``arcana.core.grpc.public_methods``); every
    other method needs ``authorization`` metadata that ``ARCANA_AUTHENTICATOR``
    accepts (``authorization: Bearer <access>``, parsed as REST parses it)."""

    def __init__(self) -> None:
        self.authenticate = authenticator_load()

    @contextmanager
    def scope(self, method: str, context: grpc.ServicerContext, request: Any) -> Iterator[None]:
        public = public_methods()
        if method in public:
            throttle_scope = public[method]
            if throttle_scope:
                _throttle(context, throttle_scope)
            yield
            return
        announce = read_ahead_of(method)
        if announce is not None and request is not None and request is not UNDECODABLE:
            # Before the caller is read: the record the servicer is about to read
            # comes back in the same cache round trip (arcana.core.context.ReadAhead).
            for kind, ident in announce(request):
                read_ahead_announce(kind, ident)
        caller = self.authenticate(authorization=_authorization(context.invocation_metadata()))
        with authenticated_as(caller):
            yield


def _authorization(metadata: Any) -> str | None:
    """The first ``authorization`` value (grpc hands non-binary metadata over as text)."""
    values = [value for key, value in metadata or () if key == "authorization"]
    return values[0] if values else None


# --- request decoding --------------------------------------------------------------------


class _Undecodable:
    """Stands in for a request message whose bytes did not decode."""

    def __repr__(self) -> str:
        return "<undecodable request>"


UNDECODABLE = _Undecodable()


def _undecodable_error() -> InvalidInput:
    return InvalidInput({"non_field_errors": ["The request message could not be decoded."]})


class DecodeInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Undecodable request bytes are the caller's mistake: INVALID_ARGUMENT.

    grpc itself answers INTERNAL ("Exception deserializing request!") when a
    request does not parse, before any interceptor runs, so a client sending
    garbage would see the status reserved for server faults. Here the
    deserializer never raises: it hands on a placeholder, and the call fails
    where the servicer would have run, inside the other interceptors (so
    authentication comes first and ``ErrorInterceptor`` maps the error).
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if (
            handler is None
            or handler.request_deserializer is None
            or _service_of(handler_call_details.method) in UNGUARDED_SERVICES
        ):
            return handler
        return _refusing_undecodable(handler)


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # whatever the codec raises, the bytes are at fault
            return UNDECODABLE

    return deserialize


def _checked(request: Any) -> Any:
    if request is UNDECODABLE:
        raise _undecodable_error()
    return request


def _refusing_undecodable(handler: Handler) -> Handler:
    def single(behaviour: Behaviour) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            return behaviour(_checked(request), context)

        return run

    def streamed(behaviour: Behaviour) -> Behaviour:
        def run(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behaviour((_checked(request) for request in requests), context)

        return run

    def adapt(behaviour: Behaviour, request_streaming: bool, response_streaming: bool) -> Behaviour:
        return streamed(behaviour) if request_streaming else single(behaviour)

    assert handler.request_deserializer is not None
    return _rebuilt(handler, adapt, _tolerant(handler.request_deserializer))


# --- throttling -----------------------------------------------------------------------


class _ThrottleRequest:
    """What :class:`_GrpcThrottle` reads of a call: the client's address."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.ident = client_address(context)


class _ThrottleView:
    def __init__(self, scope: str) -> None:
        self.throttle_scope = scope


class _GrpcThrottle(ScopedThrottle):
    """REST's throttle (same scopes, rates and counters), keyed by
    :func:`client_address`, which trusts ``GRPC_NUM_PROXIES``, not REST's
    ``NUM_PROXIES``."""

    def get_ident(self, request: Any) -> str:
        ident: str = request.ident
        return ident


def _throttle(context: grpc.ServicerContext, scope: str) -> None:
    throttle = _GrpcThrottle()
    if not throttle.allow_request(_ThrottleRequest(context), _ThrottleView(scope)):
        raise Throttled(wait=throttle.wait())


# --- metrics ------------------------------------------------------------------------


def _code_of(context: grpc.ServicerContext, failed: bool) -> str:
    """The status the call ends with: the one the code chose (``abort``,
    ``set_code``), else OK, or UNKNOWN for an exception that chose none."""
    chosen = context.code()  # type: ignore[attr-defined]  # grpc >= 1.38, not in the stubs
    if chosen is None:
        return "UNKNOWN" if failed else "OK"
    return str(chosen.name)


class ObserveInterceptor(_GuardingInterceptor):
    """Counts, times and gauges every application call of a server
    (``server``: ``"public"`` or ``"internal"``) by method and status code
    (``METRICS_ENABLED``), and logs it (``REQUEST_LOG``).

    Outermost, so that what the other interceptors answer (throttled,
    unauthenticated, over capacity) is counted too; the request id and the
    acting user come from the call's :class:`~arcana.core.context.CallRecord`,
    which the call context inside fills. The method label is the full gRPC
    method of a registered handler, never a client's free text (an unknown
    method has no handler and is not counted).

    ``build_server`` does not install it as an interceptor of its own: it
    hands it to :class:`CapacityInterceptor`, which applies it (first) to the
    handler it builds anyway, so every call goes through one handler rebuild
    and one wrapper less (:meth:`observed`)."""

    def __init__(self, server: str, *, count: bool = True, log: bool = True) -> None:
        self.server = server
        self.count = count
        self.log = log
        self._meters = metrics.GrpcMeters(server)

    def _start(self) -> tuple[int, CallRecord, Any, Any]:
        record = CallRecord()
        token = call_record.set(record)
        return time.perf_counter_ns(), record, token, self._meters.started() if self.count else None

    def _finish(
        self,
        method: str,
        context: grpc.ServicerContext,
        failed: bool,
        begun: tuple[int, CallRecord, Any, Any],
    ) -> None:
        started, record, token, meters = begun
        elapsed = time.perf_counter_ns() - started
        call_record.reset(token)
        code = _code_of(context, failed)
        if meters is not None:
            self._meters.finished(meters, method, code, elapsed * 1e-9)
        if self.log:
            request_line(
                transport="grpc",
                server=self.server,
                request_id=record.request,
                trace_id=tracing.current_trace_id(),
                user_id=record.actor,
                rpc=method,
                status=code,
                duration_ms=round(elapsed * 1e-6, 3),
            )

    def observed(self, method: str, behaviour: Behaviour) -> Behaviour:
        """``behaviour`` (of a unary-response handler) observed, as :meth:`scope`
        would, without a context manager around it."""

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            begun, failed = self._start(), True
            try:
                response = behaviour(request, context)
                failed = False
                return response
            finally:
                self._finish(method, context, failed, begun)

        return run

    @contextmanager
    def scope(self, method: str, context: grpc.ServicerContext, request: Any) -> Iterator[None]:
        begun, failed = self._start(), True
        try:
            yield
            failed = False
        finally:
            self._finish(method, context, failed, begun)


# --- capacity -----------------------------------------------------------------------------


class CapacityInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """No client can starve the server by holding calls open.

    grpc's synchronous server runs every call on one thread of its pool from
    dispatch to end, *including the wait for a unary call's request message*.
    Two kinds of call can so hold a thread for as long as a client likes:
    streams (server reflection, health ``Watch``, any streaming method) and
    unary calls whose client sends the headers but withholds the message.
    Left alone, ``max_workers`` of either take every thread, and ``Login`` and
    ``Health/Check`` queue behind them until the client lets go.

    :func:`arcana.grpc.server.build_server` gives the pool ``max_workers +
    max_streams`` threads and installs this interceptor outermost, so it sees
    every handler (health and reflection included) as grpc will run it:

    1. **At most** ``max_streams`` **threads ever run a stream.** A stream takes
       a slot (a non-blocking semaphore) when its behaviour starts on a worker
       thread and gives it back in a ``finally`` when that thread leaves it.
       With every slot taken, the next stream is answered RESOURCE_EXHAUSTED at
       once (code ``throttled``, ``retry-after: 1``), holding its thread for
       microseconds. The slot is taken before a unary-request stream (``Watch``)
       waits for its request, so that wait is counted too.
    2. **No unary call waits for its request longer than** ``request_timeout``
       **after it arrived.** Unary-request handlers are rebuilt as
       request-streaming ones, so the wait happens here rather than inside
       grpc, where a watchdog can see it; a call whose message is late is
       cancelled (the client sees CANCELLED). A call that reaches a thread
       after its time is up (it was queued) still gets ``MIN_REQUEST_WAIT``
       for a message that is already there, so a burst of N withheld requests
       holds the unary threads for about N x MIN_REQUEST_WAIT / max_workers
       seconds once, not N x request_timeout.

    So at every moment at least ``max_workers`` threads are busy only with
    calls that end by themselves: unary calls that have their request (bounded
    by the database timeouts), refused streams (instant) and request waits
    (bounded by ``request_timeout``). Queued calls are taken in arrival order,
    so ``Health/Check`` and ``Login`` wait for the calls ahead of them, never
    for a held stream. grpc's own ``maximum_concurrent_rpcs`` bounds the calls
    admitted (running and queued) and answers RESOURCE_EXHAUSTED beyond it, so
    a flood is refused, not queued without end; what is left to an attacker is
    a flood of calls per second, which rate limits and the proxy in front
    answer. Holding connections costs no thread (grpc's core serves them) and
    ends with ``grpc.max_connection_idle_ms`` / ``grpc.max_connection_age_ms``.
    """

    MIN_REQUEST_WAIT = 0.25

    def __init__(
        self,
        *,
        max_streams: int,
        request_timeout: float,
        observe: ObserveInterceptor | None = None,
    ) -> None:
        if max_streams < 1 or request_timeout <= 0:
            raise ValueError("max_streams must be >= 1 and request_timeout > 0")
        self.max_streams = max_streams
        self.request_timeout = request_timeout
        # Applied around what this bounds, for the application's methods: as
        # if it were the interceptor outside this one, in the same rebuild.
        self.observe = observe
        self._slots = threading.BoundedSemaphore(max_streams)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        observe = self.observe
        if observe is not None and _service_of(method) in UNGUARDED_SERVICES:
            observe = None
        return self._bounded(handler, method, time.monotonic(), observe)

    @contextmanager
    def _stream_slot(self, context: grpc.ServicerContext) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            _abort(context, Throttled(wait=1, message="Too many open streams; try again later."))
        try:
            yield
        finally:
            self._slots.release()

    def _request(
        self, requests: Iterator[Any], context: grpc.ServicerContext, method: str, arrived: float
    ) -> Any:
        """The one request message of a unary-request call, or the call ends."""
        due = max(arrived + self.request_timeout, time.monotonic() + self.MIN_REQUEST_WAIT)
        token = _WATCHDOG.watch(context, due)
        try:
            request = next(requests, _MISSING)
        finally:
            _WATCHDOG.forget(token)
        if request is _MISSING:  # what grpc answers a unary call without a message
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f'"{method}" requires exactly one request message.'
            )
        return request

    def _bounded(
        self, handler: Handler, method: str, arrived: float, observe: ObserveInterceptor | None
    ) -> Handler:
        """``handler`` with its stream slot and request deadline (``arrived`` is
        when grpc handed the call over, on its polling thread), observed by
        ``observe`` if given."""
        if handler.unary_unary:  # every application method: the short way
            unary_unary = handler.unary_unary

            def unary_request_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                return unary_unary(self._request(requests, context, method, arrived), context)

            return grpc.stream_unary_rpc_method_handler(
                unary_request_unary
                if observe is None
                else observe.observed(method, unary_request_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        bounded = self._bounded_stream(handler, method, arrived)
        if observe is None:
            return bounded
        return _wrap(bounded, lambda context, request: observe.scope(method, context, request))

    def _bounded_stream(self, handler: Handler, method: str, arrived: float) -> Handler:
        codecs: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_stream:
            unary_stream = handler.unary_stream

            def unary_request_stream(
                requests: Iterator[Any], context: grpc.ServicerContext
            ) -> Iterator[Any]:
                with self._stream_slot(context):
                    yield from unary_stream(
                        self._request(requests, context, method, arrived), context
                    )

            return grpc.stream_stream_rpc_method_handler(unary_request_stream, **codecs)
        if handler.stream_unary:
            stream_unary = handler.stream_unary

            def stream_request_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                with self._stream_slot(context):
                    return stream_unary(requests, context)

            return grpc.stream_unary_rpc_method_handler(stream_request_unary, **codecs)
        assert handler.stream_stream is not None  # one of the four is always set
        stream_stream = handler.stream_stream

        def stream_request_stream(
            requests: Iterator[Any], context: grpc.ServicerContext
        ) -> Iterator[Any]:
            with self._stream_slot(context):
                yield from stream_stream(requests, context)

        return grpc.stream_stream_rpc_method_handler(stream_request_stream, **codecs)


_MISSING = object()


class _RequestWatchdog:
    """Cancels calls still waiting for their request message when their time is up.

    One daemon thread per process (started on first use, and again in a forked
    child, where the parent's thread does not exist), waking every ``tick``
    seconds. Watching a call costs a dict insert and a dict pop.
    """

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self._pending: dict[int, tuple[float, grpc.ServicerContext]] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, context: grpc.ServicerContext, due: float) -> int:
        """Cancel ``context`` at ``due`` (``time.monotonic()``) unless forgotten first."""
        token = next(self._tokens)
        self._pending[token] = (due, context)
        if self._thread is None or not self._thread.is_alive():
            self._start()
        return token

    def forget(self, token: int) -> None:
        self._pending.pop(token, None)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="grpc-request-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            for token, (due, context) in list(self._pending.items()):
                if due <= now and self._pending.pop(token, None) is not None:
                    context.cancel()  # type: ignore[no-untyped-call]  # wakes the waiter: CANCELLED


_WATCHDOG = _RequestWatchdog()
