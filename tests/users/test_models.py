"""The database itself keeps emails unique case-insensitively."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from tests.factories import UserFactory
from users.models import Role, Roles, User, normalize_email

pytestmark = pytest.mark.django_db


def test_email_is_stored_normalised() -> None:
    user = UserFactory.create(email="  MiXeD.Case@Example.COM ")
    assert User.objects.get(pk=user.pk).email == "mixed.case@example.com"


def test_second_row_with_same_address_in_other_case_fails_in_the_database() -> None:
    UserFactory.create(email="dup@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory.create(email="DUP@example.com")
    assert User.objects.count() == 1


def test_database_alone_keeps_addresses_unique_across_case() -> None:
    # bulk_create skips save() and its normalisation. SQLite refuses the
    # mixed-case row through the lower-case check constraint; MySQL/MariaDB
    # through the unique index, whose collation ignores case.
    User.objects.bulk_create([User(name="First", email="sneaky@example.com")])
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(name="Sneaky", email="Sneaky@Example.com")])
    assert User.objects.count() == 1


def test_normalize_email() -> None:
    assert normalize_email(" A.B@C.D ") == "a.b@c.d"


def test_roles_are_seeded() -> None:
    assert set(Role.objects.values_list("name", flat=True)) == {Roles.USER, Roles.ADMIN}


def test_create_superuser_holds_admin_role() -> None:
    admin = User.objects.create_superuser(email="Root@Example.com", name="Root", password="x")
    assert admin.is_staff
    assert admin.is_superuser
    assert admin.role_names == ["admin", "user"]
    assert admin.email == "root@example.com"
    assert str(admin) == "root@example.com"


def test_create_user_requires_email() -> None:
    with pytest.raises(ValueError, match="email"):
        User.objects.create_user(email="", name="Nobody")


def test_createsuperuser_noinput_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "Ops@Example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_NAME", "Ops Team")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long and unusual passphrase 42")
    call_command("createsuperuser", "--noinput", verbosity=0)
    admin = User.objects.get(email="ops@example.com")
    assert admin.name == "Ops Team"
    assert admin.is_superuser
    assert admin.role_names == ["admin", "user"]
    assert admin.check_password("a long and unusual passphrase 42")


def test_addresses_differing_only_by_accent_are_distinct() -> None:
    # MySQL's default collation would fold these together; the column compares bytes.
    plain = UserFactory.create(email="jose@example.com")
    accented = UserFactory.create(email="josé@example.com")
    assert plain.pk != accented.pk
    assert User.objects.get(email="jose@example.com").pk == plain.pk
    assert User.objects.get(email="josé@example.com").pk == accented.pk
    assert User.objects.filter(email="strasse@example.com").count() == 0
    UserFactory.create(email="straße@example.com")
    assert User.objects.filter(email="strasse@example.com").count() == 0
