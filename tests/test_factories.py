"""The user factory builds users the way the tests rely on."""

from typing import Any

import pytest

from tests.factories import DEFAULT_PASSWORD, UserFactory
from users.models import Roles, User
from users.signals import password_changed

pytestmark = pytest.mark.django_db


def test_roles_by_default_for_admins_and_on_request() -> None:
    assert UserFactory.create().role_names == [Roles.USER]
    assert UserFactory.create(admin=True).role_names == [Roles.ADMIN, Roles.USER]
    assert UserFactory.create(roles=[Roles.ADMIN]).role_names == [Roles.ADMIN]
    assert UserFactory.create(roles=[]).role_names == []


def test_passwords_are_hashed_and_stored() -> None:
    default = User.objects.get(pk=UserFactory.create().pk)
    chosen = User.objects.get(pk=UserFactory.create(password="another fine phrase").pk)
    assert default.check_password(DEFAULT_PASSWORD)
    assert chosen.check_password("another fine phrase")
    assert not chosen.password.startswith("another")


def test_build_saves_nothing() -> None:
    user = UserFactory.build(admin=True)
    assert user._state.adding
    assert user.check_password(DEFAULT_PASSWORD)
    assert not User.objects.exists()


def test_a_new_users_password_is_no_password_change(
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[str] = []

    def receive(sender: Any, user_id: str, **kwargs: Any) -> None:
        sent.append(user_id)

    password_changed.connect(receive)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            user = UserFactory.create()
        assert sent == []
        with django_capture_on_commit_callbacks(execute=True):
            user.set_password("a changed passphrase")
            user.save()
        assert sent == [str(user.pk)]
    finally:
        password_changed.disconnect(receive)
