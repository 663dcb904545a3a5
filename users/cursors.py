"""Keyset cursors for the user list: where a page ended, signed.

A cursor holds the last row's position in the list's order, ``[created_at``
in integer microseconds since the epoch, ``id]``, and the filters and
ordering the list was made with. It is signed (``django.core.signing``, salt
``users.list.cursor``, with ``SECRET_KEY``), so a client cannot forge a
position or change the filters in it: a changed cursor is ``InvalidCursor``,
and one sent with other filters than its own is ``CursorFilterMismatch``
(the position means nothing in another list). It does not expire: it names
a position, not a snapshot, and a row inserted or deleted before it moves
nothing after it (no duplicates, no gaps among the rows that stay).

No database here: the service tier (which has none in layered mode) makes
and reads cursors; the repository gets the plain position.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core import signing

from users.errors import CursorFilterMismatch, InvalidCursor
from users.records import UserRecord

SALT = "users.list.cursor"
# The one order lists have (``created_at, id``); named in the cursor so a
# later second order cannot take a cursor of this one.
ORDERING = "created_at,id"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ListFilters:
    search: str | None
    sync_status: str | None
    is_active: bool | None

    def signed_form(self) -> list[Any]:
        return [self.search, self.sync_status, self.is_active, ORDERING]


@dataclass(frozen=True, slots=True)
class Position:
    """Just after this row, in ``created_at, id`` order."""

    created_at: datetime
    id: str


def make_cursor(last: UserRecord, filters: ListFilters) -> str:
    micros = (last.created_at - _EPOCH) // _MICROSECOND
    payload = {"after": [micros, last.id], "filters": filters.signed_form()}
    return signing.dumps(payload, salt=SALT, compress=True)


def read_cursor(cursor: str, filters: ListFilters) -> Position:
    """The position ``cursor`` names, if it is ours and made for ``filters``."""
    try:
        payload = signing.loads(cursor, salt=SALT)
    except signing.BadSignature:
        raise InvalidCursor() from None
    try:
        micros, last_id = payload["after"]
        made_for = payload["filters"]
        if type(micros) is not int or type(last_id) is not str:
            raise TypeError
        created_at = _EPOCH + micros * _MICROSECOND
    except (KeyError, TypeError, ValueError, OverflowError):
        # Signed by us but not in this shape: a key shared with something else.
        raise InvalidCursor() from None
    if made_for != filters.signed_form():
        raise CursorFilterMismatch()
    return Position(created_at=created_at, id=last_id)
