"""Bring stored emails to the normal form of ``users.models.normalize_email``.

It now applies NFKC and stores the domain as IDNA ("ann@bücher.de" becomes
"ann@xn--bcher-kva.de"); logins look addresses up in that form, so a row
stored before would no longer be found. Rows whose new form another row
already holds (two accounts that were one address spelled two ways) are left
as they are, for an operator to resolve.
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from users.models import normalize_email


def forwards(apps: Apps, schema_editor: BaseDatabaseSchemaEditor | None) -> None:
    User = apps.get_model("users", "User")
    # Only non-ASCII addresses can change: ASCII was already trimmed and lower-cased.
    rows = [
        (pk, email)
        for pk, email in User.objects.values_list("pk", "email").iterator()
        if not email.isascii()
    ]
    for pk, email in rows:
        normal = normalize_email(email)
        if normal != email and not User.objects.filter(email=normal).exists():
            User.objects.filter(pk=pk).update(email=normal)


class Migration(migrations.Migration):
    dependencies = [("users", "0003_email_binary_collation_on_mysql")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
