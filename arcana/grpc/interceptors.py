"""Server interceptors: what DRF's request cycle does for REST, done for gRPC.

``ErrorInterceptor`` (outermost) opens and closes the request the way Django
does (``request_started`` / ``request_finished``: stale database connections
closed, caches released) and is the single point where exceptions become
statuses (``arcana.grpc.errors``). ``AuthInterceptor`` throttles the public
methods and authenticates every other one with the REST rules, making the
caller available to servicers through :func:`authenticated`.
``DecodeInterceptor`` (innermost) turns request bytes that do not decode into
``INVALID_ARGUMENT`` once the caller is authenticated, as REST answers a
malformed body with 400 after 401.

Interceptors choose handlers on grpc's polling thread, so nothing slow (no
database, no cache) happens in ``intercept_service``: the work is wrapped
around the handler's behaviour and runs on the worker thread with the RPC.
Health and reflection are left entirely alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from django.core.signals import request_finished, request_started
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from arcana.exceptions import InvalidInput, Throttled, Unauthenticated
from arcana.grpc.errors import failure_of
from authn.services import Authenticated, access_token_authenticate
from authn.throttling import ScopedThrottle

# Methods anyone may call, with the throttle scope REST uses for the same operation.
PUBLIC_METHODS: Mapping[str, str | None] = {
    "/arcana.v1.AuthService/Register": "register",
    "/arcana.v1.AuthService/Login": "login",
    "/arcana.v1.AuthService/Refresh": "refresh",
}

# Infrastructure that must answer even when the application cannot.
UNGUARDED_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

_authenticated: ContextVar[Authenticated | None] = ContextVar("grpc_authenticated", default=None)

if TYPE_CHECKING:  # grpc's classes are generic only in the stubs
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Scope: TypeAlias = Callable[[grpc.ServicerContext], AbstractContextManager[None]]
    Behaviour: TypeAlias = Callable[[Any, grpc.ServicerContext], Any]


def authenticated() -> Authenticated:
    """The caller of the RPC being served (set by :class:`AuthInterceptor`)."""
    auth = _authenticated.get()
    if auth is None:  # a servicer reached without the interceptor: fail closed
        raise Unauthenticated()
    return auth


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

    def unary_response(behaviour: Behaviour) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            with scope(context):
                return behaviour(request, context)

        return run

    def stream_response(behaviour: Behaviour) -> Behaviour:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with scope(context):
                yield from behaviour(request, context)

        return run

    def adapt(behaviour: Behaviour, request_streaming: bool, response_streaming: bool) -> Behaviour:
        return stream_response(behaviour) if response_streaming else unary_response(behaviour)

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
        return _wrap(handler, lambda context: self.scope(method, context))

    def scope(self, method: str, context: grpc.ServicerContext) -> AbstractContextManager[None]:
        raise NotImplementedError


class ErrorInterceptor(_GuardingInterceptor):
    """Django's request boundaries, and the one exception -> status mapping."""

    @contextmanager
    def scope(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        request_started.send(sender=self.__class__)
        try:
            yield
        except Exception as exc:
            _abort(context, exc)
        finally:
            request_finished.send(sender=self.__class__)


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
    """Throttles public methods; everything else needs ``authorization: Bearer <access>``."""

    @contextmanager
    def scope(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        if method in PUBLIC_METHODS:
            throttle_scope = PUBLIC_METHODS[method]
            if throttle_scope:
                _throttle(context, throttle_scope)
            yield
            return
        token = _authenticated.set(
            access_token_authenticate(token=_bearer_token(context.invocation_metadata()))
        )
        try:
            yield
        finally:
            _authenticated.reset(token)


def _bearer_token(metadata: Any) -> str:
    """The token of ``authorization: Bearer <token>``, parsed as REST parses the header."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if not values:
        raise Unauthenticated()
    raw = values[0].decode("latin-1") if isinstance(values[0], bytes) else str(values[0])
    parts = raw.split()
    if len(parts) != 2 or parts[0] not in jwt_settings.AUTH_HEADER_TYPES:
        raise Unauthenticated("Authorization metadata must be 'Bearer <token>'.")
    return parts[1]


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
    """What DRF's throttles read of a request: the client address and the
    ``X-Forwarded-For`` header (trusted only as far as ``NUM_PROXIES`` says)."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.META: dict[str, str] = {"REMOTE_ADDR": peer_address(context.peer())}
        self.headers: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if key == "x-forwarded-for" and isinstance(value, str):
                self.headers[key] = value
                self.META["HTTP_X_FORWARDED_FOR"] = value


class _ThrottleView:
    def __init__(self, scope: str) -> None:
        self.throttle_scope = scope


def peer_address(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``; ``ipv6:[::1]:5678`` -> ``::1``."""
    transport, _, rest = peer.partition(":")
    if transport == "ipv4":
        return rest.rpartition(":")[0]
    if transport == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer  # unix sockets and the like: one bucket per path


def client_address(context: grpc.ServicerContext) -> str:
    """The calling client's address, as the throttles see it."""
    return peer_address(context.peer())


def _throttle(context: grpc.ServicerContext, scope: str) -> None:
    throttle = ScopedThrottle()
    if not throttle.allow_request(_ThrottleRequest(context), _ThrottleView(scope)):
        raise Throttled(wait=throttle.wait())
