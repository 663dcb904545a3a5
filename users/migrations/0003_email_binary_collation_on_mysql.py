"""On MySQL/MariaDB, compare stored emails byte for byte.

Emails are stored lower-cased, so exact comparison is the case-insensitive
comparison the contract asks for. The server's default collation would also
fold accents and some letters together ("josé" = "jose", "ß" = "ss"), making
distinct addresses collide and a login lookup match someone else's row.
SQLite already compares bytes. A later AlterField on ``email`` must keep this.
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

COLUMN = "varchar(254) CHARACTER SET utf8mb4 COLLATE {} NOT NULL"


def _set_collation(schema_editor: BaseDatabaseSchemaEditor, collation: str) -> None:
    if schema_editor.connection.vendor != "mysql":
        return
    schema_editor.execute(
        f"ALTER TABLE users_user MODIFY email {COLUMN.format(collation)}"
    )


def forwards(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _set_collation(schema_editor, "utf8mb4_bin")


def backwards(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _set_collation(schema_editor, "utf8mb4_unicode_ci")


class Migration(migrations.Migration):
    # MySQL cannot roll DDL back; Django refuses DDL inside a migration's transaction.
    atomic = False
    dependencies = [("users", "0002_seed_roles")]

    operations = [migrations.RunPython(forwards, backwards)]
