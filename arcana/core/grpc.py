"""What the apps' gRPC servicers share with the project's interceptors.

- The caller: ``arcana.grpc.interceptors.AuthInterceptor`` authenticates each
  call (:func:`authenticated_as`) and servicers read it back with
  :func:`current_actor` / :func:`current_caller`.
- The client's address, trusting ``GRPC_NUM_PROXIES`` (:func:`client_address`).
- Which methods anyone may call, and with which throttle scope: each app
  declares its own (:func:`public_methods_declare`, from its
  ``AppConfig.ready``); the interceptor reads :func:`public_methods`. A method
  nobody declared needs credentials.
- Which records a method is about to read, so authentication's cache round
  trip fetches them too (:func:`read_ahead_declare`, :func:`read_ahead_of`).
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TypeVar

import grpc
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from google.protobuf.descriptor import ServiceDescriptor

from arcana.core.exceptions import Unauthenticated
from arcana.core.principal import Caller, as_kind

T = TypeVar("T")

# --- the caller -------------------------------------------------------------------

_caller: ContextVar[Caller | None] = ContextVar("grpc_caller", default=None)


@contextmanager
def authenticated_as(caller: Caller) -> Iterator[None]:
    """Serve the call inside as ``caller`` (the auth interceptor's side)."""
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


def _current() -> Caller:
    caller = _caller.get()
    if caller is None:  # a servicer reached without the interceptor: fail closed
        raise Unauthenticated()
    return caller


def current_caller(kind: type[T]) -> T:
    """What the authenticator returned for the call being served, as a ``kind``
    (``authn.services.Authenticated``)."""
    return as_kind(_current(), kind)


def current_actor(kind: type[T]) -> T:
    """Who is making the call being served, as a ``kind`` (``users.records.Actor``)."""
    return as_kind(_current().actor, kind)


# --- the client's address ---------------------------------------------------------------


def peer_address(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``; ``ipv6:[::1]:5678`` -> ``::1``."""
    transport, _, rest = peer.partition(":")
    if transport == "ipv4":
        return rest.rpartition(":")[0]
    if transport == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer  # unix sockets and the like: one bucket per path


def client_address(context: grpc.ServicerContext) -> str:
    """The address of the client making the call, as DRF's ``get_ident`` finds
    it for REST, but trusting ``settings.GRPC_NUM_PROXIES`` proxies.

    With ``GRPC_NUM_PROXIES = 0`` (the default: the gRPC port is exposed
    directly) it is the peer's address and ``x-forwarded-for`` metadata is
    ignored, since any client can send it. With N >= 1 trusted proxies in
    front, each appending the address it saw, it is the Nth entry from the
    right of ``x-forwarded-for`` (the leftmost when there are fewer), or the
    peer when the metadata is absent. Several ``x-forwarded-for`` entries
    are joined in order, as HTTP joins repeated headers. REST's
    ``NUM_PROXIES`` plays no part: REST may sit behind a proxy while gRPC
    does not.
    """
    remote = peer_address(context.peer())
    num_proxies: int = settings.GRPC_NUM_PROXIES
    if num_proxies <= 0:
        return remote
    forwarded = [
        value
        for key, value in context.invocation_metadata() or ()
        if key == "x-forwarded-for" and isinstance(value, str)
    ]
    if not forwarded:
        return remote
    addresses = ",".join(forwarded).split(",")
    return addresses[-min(num_proxies, len(addresses))].strip()


# --- public methods ---------------------------------------------------------------------

_public: dict[str, str | None] = {}


def public_methods_declare(
    *, service: ServiceDescriptor, throttle_scopes: Mapping[str, str | None]
) -> None:
    """Let anyone call these methods of ``service``, each throttled per client
    address with its scope of ``THROTTLE_RATES`` (``None``: not throttled).

    Raises ``ImproperlyConfigured`` for a method the service does not have, or
    one already declared with another scope.
    """
    for name, scope in throttle_scopes.items():
        if name not in service.methods_by_name:
            raise ImproperlyConfigured(f"{service.full_name} has no method {name!r}.")
        path = f"/{service.full_name}/{name}"
        if _public.get(path, scope) != scope:
            raise ImproperlyConfigured(f"{path} is already public with scope {_public[path]!r}.")
        _public[path] = scope


def public_methods() -> Mapping[str, str | None]:
    """Every public method path (``/package.Service/Method``) and its throttle scope."""
    return MappingProxyType(_public)


# --- reads ahead of authentication -----------------------------------------------------

# (kind, id) pairs a method's request names, for arcana.core.context.read_ahead_announce.
ReadAheadOf = Callable[[Any], Iterable[tuple[str, str]]]
_read_ahead: dict[str, ReadAheadOf] = {}


def read_ahead_declare(*, service: ServiceDescriptor, methods: Mapping[str, ReadAheadOf]) -> None:
    """The records these methods of ``service`` are about to read, named by a
    function of the request: the auth interceptor announces them before it
    reads the caller, so one cache round trip serves both (as REST's
    controllers announce theirs before DRF authenticates).

    Raises ``ImproperlyConfigured`` for a method the service does not have.
    """
    for name, announce in methods.items():
        if name not in service.methods_by_name:
            raise ImproperlyConfigured(f"{service.full_name} has no method {name!r}.")
        _read_ahead[f"/{service.full_name}/{name}"] = announce


def read_ahead_of(method: str) -> ReadAheadOf | None:
    """What :func:`read_ahead_declare` declared for ``method`` (a full path), if anything."""
    return _read_ahead.get(method)
