"""The floors' one query: a user row by primary key, as JSON bytes."""

import json
import uuid

from django.db import connection

SQL = "SELECT id, name, email FROM users_user WHERE id = %s"


def user_row_json(user_id: str) -> bytes | None:
    """The row as JSON, or ``None`` when there is no such user (or the id is not a UUID)."""
    try:
        pk = uuid.UUID(user_id)
    except ValueError:
        return None
    # Django stores UUIDs as 32 hex digits unless the backend has a native type
    # (MariaDB >= 10.7): the parameter must match the column's form to hit the index.
    param = str(pk) if connection.features.has_native_uuid_field else pk.hex
    with connection.cursor() as cursor:
        cursor.execute(SQL, [param])
        row = cursor.fetchone()
    if row is None:
        return None
    return json.dumps({"id": str(uuid.UUID(str(row[0]))), "name": row[1], "email": row[2]}).encode()
