"""authn's refresh-token table (authn.models.RefreshToken).

It replaces simplejwt's token_blacklist tables and the lineage table of the
first authn migration. A database made before this change still has those
tables: their live tokens are copied here, so sessions survive the upgrade;
the old tables are left for the operator to drop.
"""

from django.db import migrations, models

import uuid
from datetime import UTC, datetime

_OLD = ("token_blacklist_outstandingtoken", "token_blacklist_blacklistedtoken")
_BATCH = 1000


def _user_id(raw: object) -> str:
    """The old foreign key's value (a UUID, stored as 32 hex digits on MySQL
    and SQLite) in the users app's form."""
    return str(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))


def _aware(value: datetime | None) -> datetime | None:
    """A raw cursor's datetime as Django stored it: UTC, naive on MySQL."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def copy_old_tokens(apps, schema_editor):  # type: ignore[no-untyped-def]
    connection = schema_editor.connection
    tables = set(connection.introspection.table_names())
    if not set(_OLD) <= tables:
        return
    lineage = "authn_refreshtokenlineage" in tables
    family = "l.family" if lineage else "NULL"
    join = "LEFT JOIN authn_refreshtokenlineage l ON l.jti = o.jti" if lineage else ""
    refresh_token = apps.get_model("authn", "RefreshToken")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.jti, o.user_id, {family}, o.token, o.created_at, o.expires_at, "
            "b.blacklisted_at FROM token_blacklist_outstandingtoken o "
            "LEFT JOIN token_blacklist_blacklistedtoken b ON b.token_id = o.id "
            f"{join} WHERE o.user_id IS NOT NULL"
        )
        while rows := cursor.fetchmany(_BATCH):
            refresh_token.objects.bulk_create(
                refresh_token(
                    jti=jti,
                    user_id=_user_id(user_id),
                    family=fam or jti,
                    token=token,
                    created_at=_aware(created_at or expires_at),
                    expires_at=_aware(expires_at),
                    revoked_at=_aware(revoked_at),
                )
                for jti, user_id, fam, token, created_at, expires_at, revoked_at in rows
            )


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="RefreshToken",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("jti", models.CharField(max_length=255, unique=True)),
                ("user_id", models.CharField(db_index=True, max_length=64)),
                ("family", models.CharField(db_index=True, max_length=255)),
                ("token", models.TextField()),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["user_id", "revoked_at"], name="authn_refresh_user_live")
                ],
            },
        ),
        migrations.RunPython(copy_old_tokens, migrations.RunPython.noop),
    ]
