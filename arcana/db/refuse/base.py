"""The refusing engine: SQLite's SQL compiler, no connection ever.

SQLite's operations and features are used only to compile queries (pure Python,
no connection), so the error can show the SQL an ORM call would have run. The
query parameters are never shown: they may hold a password hash or a token.
"""

from types import TracebackType
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

# Long enough for any query of this project; an IN list of thousands is cut.
SQL_SHOWN_CHARS = 500


class HiddenDatabaseUse(ImproperlyConfigured):
    """Code in a tier without a database tried to use one.

    Not a ``django.db.Error``: a database outage answers 503, but this is a
    bug in the deployment's layering and must surface as one.
    """

    def __init__(self, use: str) -> None:
        if len(use) > SQL_SHOWN_CHARS:
            use = use[:SQL_SHOWN_CHARS] + "…"
        super().__init__(f"this tier has no database; hidden ORM use: {use}")


class RefusingCursor:
    """What ``connection.cursor()`` returns: executing anything raises."""

    def execute(self, sql: str, params: Any = None) -> NoReturn:
        raise HiddenDatabaseUse(str(sql))

    def executemany(self, sql: str, param_list: Any) -> NoReturn:
        raise HiddenDatabaseUse(str(sql))

    def callproc(self, procname: str, params: Any = None, kparams: Any = None) -> NoReturn:
        raise HiddenDatabaseUse(f"stored procedure {procname}")

    def close(self) -> None:
        """Nothing is open."""

    def __enter__(self) -> "RefusingCursor":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def __getattr__(self, name: str) -> NoReturn:
        # fetchone(), rowcount, lastrowid, ...: nothing was executed.
        raise HiddenDatabaseUse(f"cursor.{name}")


class DatabaseWrapper(SQLiteDatabaseWrapper):
    display_name = "no database (this tier)"

    def connect(self) -> NoReturn:
        raise HiddenDatabaseUse("a database connection")

    def ensure_connection(self) -> NoReturn:
        raise HiddenDatabaseUse("a database connection")

    def get_new_connection(self, conn_params: Any) -> NoReturn:
        raise HiddenDatabaseUse("a database connection")

    def get_autocommit(self) -> NoReturn:
        raise HiddenDatabaseUse("a transaction (transaction.atomic or a write)")

    def set_autocommit(
        self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False
    ) -> NoReturn:
        raise HiddenDatabaseUse("a transaction (set_autocommit)")

    def _cursor(self, name: str | None = None) -> Any:
        # A cursor, not an error yet, so that the error names the SQL.
        return RefusingCursor()

    def is_usable(self) -> bool:
        return True
