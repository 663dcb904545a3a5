"""What a request carries across every tier: its id and who is acting (and,
within one process, the cache reads it announced: :class:`ReadAhead`).

The public edge (``arcana.middleware.RequestIdMiddleware`` for REST,
``arcana.grpc.interceptors.ErrorInterceptor`` for gRPC) sets both for the
duration of a call; the internal hops (``arcana.core.internal``) forward them
as metadata and set them again on the far side, so every tier's log line of
one call names the same request. Context variables, not thread locals: a
value never outlives the call that set it.
"""

import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import request_finished, request_started

request_id: ContextVar[str | None] = ContextVar("arcana_request_id", default=None)
acting_user: ContextVar[str | None] = ContextVar("arcana_acting_user", default=None)


@dataclass(slots=True)
class CallRecord:
    """What a call's :func:`call_context` held when it ended, for whoever
    wraps the call from outside it (a gRPC server's request log, which runs
    outside the interceptor that sets the context)."""

    request: str | None = None
    actor: str | None = None


call_record: ContextVar[CallRecord | None] = ContextVar("arcana_call_record", default=None)


@dataclass(slots=True)
class ReadAhead:
    """Reads one call announced before making them, so that one round trip to
    the shared cache serves several.

    A controller knows, before authentication runs, which record its handler
    will read (``GET /users/{id}``), and authentication reads the caller's
    record from the same cache. The controller announces the target
    (:func:`read_ahead_announce`); the repository reading the caller fetches the
    announced keys in the same round trip and keeps what it got
    (:meth:`keep`) for the handler's read, which takes it (:meth:`take`) once,
    instead of asking again. A write in between forgets the entry
    (:meth:`forget`). It lives exactly as long as the call's
    :func:`call_context`: nothing fetched outlives the call it was fetched for.
    """

    announced: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids
    found: dict[str, object] = field(default_factory=dict)  # cache key -> value

    def pop_announced(self, kind: str) -> list[str]:
        """The ids of ``kind`` announced so far (each handed out once)."""
        return self.announced.pop(kind, [])

    def keep(self, key: str, value: object) -> None:
        self.found[key] = value

    def take(self, key: str) -> object:
        """What was fetched for ``key`` (:data:`NOT_FETCHED` if nothing), once."""
        return self.found.pop(key, NOT_FETCHED)

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.found.pop(key, None)


NOT_FETCHED = object()
_read_ahead: ContextVar[ReadAhead | None] = ContextVar("arcana_read_ahead", default=None)


def read_ahead() -> ReadAhead | None:
    """The current call's :class:`ReadAhead`; None outside a :func:`call_context`."""
    return _read_ahead.get()


def read_ahead_announce(kind: str, ident: str) -> None:
    """This call is about to read the ``kind`` record ``ident`` (unchecked: the
    reader validates it). Outside a call it does nothing."""
    ahead = _read_ahead.get()
    if ahead is not None:
        ahead.announced.setdefault(kind, []).append(ident)


# What a client (or a gateway) may name its request: short, and nothing that
# could break a log line or a header.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def accept_request_id(value: str | None) -> str:
    """``value`` when it is a usable request id, else a new one."""
    if value and _ACCEPTED.fullmatch(value):
        return value
    return uuid.uuid4().hex


class _CallContext:
    """:func:`call_context`'s context manager: a class, not a generator, as
    it is entered on every call and every hop."""

    __slots__ = ("_actor", "_request", "_tokens")

    def __init__(self, request: str | None, actor: str | None) -> None:
        self._request, self._actor = request, actor

    def __enter__(self) -> None:
        self._tokens = (
            request_id.set(self._request),
            acting_user.set(self._actor),
            _read_ahead.set(ReadAhead()),
        )

    def __exit__(self, *exc_info: object) -> None:
        request_token, actor_token, ahead_token = self._tokens
        record = call_record.get()
        if record is not None:
            record.request, record.actor = request_id.get(), acting_user.get()
        _read_ahead.reset(ahead_token)
        acting_user.reset(actor_token)
        request_id.reset(request_token)


def call_context(
    *, request: str | None = None, actor: str | None = None
) -> AbstractContextManager[None]:
    """Run the block with ``request_id`` / ``acting_user`` set."""
    return _CallContext(request, actor)


_NOTHING_TO_DO = nullcontext()  # reusable: it holds no state


def request_boundaries(sender: type) -> AbstractContextManager[None]:
    """Django's request boundaries around one gRPC call (``request_started`` /
    ``request_finished``, as a WSGI request has them), where this process
    holds a database: their receivers close stale or broken connections and
    keep replica reads honest (``arcana.db.routers``). A layered tier without
    a database (controller, service) has nothing for them to do and skips
    their cost, twice per call, on every call and hop."""
    if not settings.ARCANA_DEPLOYMENT.holds_database:
        return _NOTHING_TO_DO
    return _signalled_boundaries(sender)


@contextmanager
def _signalled_boundaries(sender: type) -> Iterator[None]:
    request_started.send(sender=sender)
    try:
        yield
    finally:
        request_finished.send(sender=sender)
