"""The project's Argon2id hasher (users/hashers.py): OWASP's minimum, and
Django's stronger-but-slower defaults upgraded to it at the next login."""

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import Argon2PasswordHasher, identify_hasher, make_password
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD
from users.hashers import Argon2idPasswordHasher
from users.models import User

pytestmark = pytest.mark.django_db

PROJECT = ["users.hashers.Argon2idPasswordHasher"]


def parameters(encoded: str) -> str:
    """``m=…,t=…,p=…`` of an ``argon2$argon2id$v=19$m=…,t=…,p=…$salt$hash``."""
    return encoded.split("$")[3]


def test_the_production_settings_hash_with_argon2id_at_owasps_minimum() -> None:
    # The test settings swap in a cheap hasher; base (and so production) lists this one first.
    from arcana.settings import base

    assert base.PASSWORD_HASHERS[0] == "users.hashers.Argon2idPasswordHasher"
    encoded = Argon2idPasswordHasher().encode(DEFAULT_PASSWORD, "saltsaltsalt")
    assert encoded.startswith("argon2$argon2id$")
    assert parameters(encoded) == "m=19456,t=2,p=1"
    assert django_settings.PASSWORD_HASHERS != base.PASSWORD_HASHERS  # the test run's own


def test_a_django_default_argon2_hash_is_upgraded_at_login(user: User, settings: Any) -> None:
    settings.PASSWORD_HASHERS = PROJECT
    old = Argon2PasswordHasher().encode(DEFAULT_PASSWORD, Argon2PasswordHasher().salt())
    assert parameters(old) == "m=102400,t=2,p=8"  # Django's defaults
    User.objects.filter(pk=user.pk).update(password=old)
    assert isinstance(identify_hasher(old), Argon2idPasswordHasher)  # still ours to check

    response = APIClient().post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )

    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert parameters(user.password) == "m=19456,t=2,p=1"
    assert user.check_password(DEFAULT_PASSWORD)


def test_a_current_hash_is_left_alone_at_login(user: User, settings: Any) -> None:
    settings.PASSWORD_HASHERS = PROJECT
    current = make_password(DEFAULT_PASSWORD)
    User.objects.filter(pk=user.pk).update(password=current)
    response = APIClient().post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.password == current


def test_the_hash_blocks_go_back_to_the_os_on_glibc() -> None:
    # Without the fixed mmap threshold every thread that hashed once keeps its
    # 19 MiB (the live soak test saw gRPC RSS grow 25% in 20 s of logins).
    import platform

    from users import hashers

    assert platform.libc_ver()[0] == "glibc"  # what this project's image and CI run
    assert hashers.HASH_BLOCKS_UNMAPPED is True
