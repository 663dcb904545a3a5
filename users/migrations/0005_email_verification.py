"""``email_verified`` and ``pending_email`` (email verification).

Accounts that exist before this migration count as verified: they were made
when no address was ever confirmed, and turning REQUIRE_EMAIL_VERIFICATION
on must not lock every one of them out. Accounts made after it start
unverified and are sent a link.
"""

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def grandfather(apps: Apps, schema_editor: BaseDatabaseSchemaEditor | None) -> None:
    apps.get_model("users", "User").objects.update(email_verified=True)


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0004_emails_in_the_new_normal_form"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified",
            field=models.BooleanField(
                db_index=True,
                default=False,
                help_text="The owner has confirmed this address through the link mailed to it.",
                verbose_name="email verified",
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="pending_email",
            field=models.EmailField(
                blank=True,
                default="",
                help_text="A new address waiting for its owner to confirm it.",
                max_length=254,
            ),
        ),
        migrations.RunPython(grandfather, migrations.RunPython.noop, elidable=True),
    ]
