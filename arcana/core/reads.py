"""Where a read may be served from, for the code that knows it must be fresh.

With read replicas configured (``DATABASE_REPLICA_URLS``) the database router
(``arcana.db.routers``) may send an ORM read to a replica, which can be a
moment behind the primary. A read whose answer must include every committed
write, whoever made it (a credential check, a password hash), runs under
:func:`primary`. Without replicas this costs nothing and changes nothing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_primary: ContextVar[bool] = ContextVar("arcana_read_from_primary", default=False)


@contextmanager
def primary() -> Iterator[None]:
    """Every ORM read in the block goes to the primary database."""
    token = _primary.set(True)
    try:
        yield
    finally:
        _primary.reset(token)


def primary_required() -> bool:
    """True inside a :func:`primary` block."""
    return _primary.get()
