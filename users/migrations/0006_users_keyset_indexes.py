"""Indexes for the user list at scale: its order ``(created_at, id)``, alone
and after each equality filter (``sync_status``, ``is_active``), so a page by
keyset is one ordered index range read. The single-column ``created_at`` and
``sync_status`` indexes are prefixes of the new ones and go, after the new
ones exist (no moment without an index to read by)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("users", "0005_email_verification"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="user",
            index=models.Index(fields=["created_at", "id"], name="users_list_created"),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(fields=["sync_status", "created_at", "id"], name="users_list_sync"),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(fields=["is_active", "created_at", "id"], name="users_list_active"),
        ),
        migrations.AlterField(
            model_name="user",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True),
        ),
        migrations.AlterField(
            model_name="user",
            name="sync_status",
            field=models.CharField(
                choices=[("synced", "Synced"), ("pending", "Pending"), ("failed", "Failed")],
                default="synced",
                max_length=16,
            ),
        ),
    ]
