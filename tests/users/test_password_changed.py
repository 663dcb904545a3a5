"""Any password change ends the user's other sessions, through one signal:
``User.save`` (and, for the API's change, ``users.repository.
user_set_password_hash``) sends ``users.signals.password_changed`` once a new
password has committed, and authn's receiver ends the sessions. The paths: the model itself
and ``manage.py changepassword`` here; the admin's forms in test_admin.py; the
API's POST /auth/password in tests/authn/test_api.py."""

from collections.abc import Iterator
from contextlib import suppress
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.management.commands import changepassword
from django.core.management import call_command
from django.db import transaction
from rest_framework.test import APIClient

from tests.conftest import tokens_for
from tests.factories import DEFAULT_PASSWORD, UserFactory
from users import services as users_services
from users.models import User
from users.signals import password_changed

pytestmark = pytest.mark.django_db

STRONG = "a long and unusual passphrase 42"


@pytest.fixture
def announced() -> Iterator[list[dict[str, Any]]]:
    """Every password_changed sent during the test: its arguments."""
    sent: list[dict[str, Any]] = []

    def listen(sender: type, **kwargs: Any) -> None:
        kwargs.pop("signal")
        sent.append(kwargs)

    password_changed.connect(listen, sender=User, dispatch_uid="test-listener")
    yield sent
    password_changed.disconnect(sender=User, dispatch_uid="test-listener")


def refresh_status(token: str) -> int:
    response = APIClient().post("/api/v1/auth/refresh", {"refresh": token}, format="json")
    return int(response.status_code)


def test_a_new_password_is_announced_once_after_the_commit(
    user: User, announced: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user.set_password(STRONG)
        user.save()
        assert announced == []  # not before the commit
    assert announced == [{"user_id": str(user.pk), "keep_session": None}]


def test_the_api_path_announces_the_session_to_keep(
    user: User, announced: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    """The API stores its hash through the repository, naming the caller's
    session; a model save never keeps one."""
    with django_capture_on_commit_callbacks(execute=True):
        users_services.user_set_password(
            user_id=str(user.pk), password=STRONG, keep_session="jti-of-the-callers-session"
        )
        user.refresh_from_db()
        user.set_password(DEFAULT_PASSWORD)
        user.save()
    assert [one["keep_session"] for one in announced] == ["jti-of-the-callers-session", None]


def test_saves_that_set_no_new_password_announce_nothing(
    user: User,
    announced: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user.name = "Renamed"
        user.save()
        user.set_password(STRONG)
        user.save(update_fields=["name"])  # the new hash is not stored
        UserFactory.create()  # a new user has no session to end
        # A hash upgrade at login stores a new hash of the same password.
        settings.PASSWORD_HASHERS = [
            "tests.hashers.FastArgon2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        ]
        old = User.objects.get(pk=user.pk)
        old.password = make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")
        old.save(update_fields=["password"])
        assert old.check_password(DEFAULT_PASSWORD)
        assert old.password.startswith("argon2")  # upgraded and saved
    assert announced == []


def test_disabling_password_login_is_a_change(
    user: User, announced: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user.set_unusable_password()
        user.save()
    assert announced == [{"user_id": str(user.pk), "keep_session": None}]


def test_the_receiver_ends_every_session_of_that_user_only(
    user: User, other_user: User, django_capture_on_commit_callbacks: Any
) -> None:
    sessions, bystander = [tokens_for(user), tokens_for(user)], tokens_for(other_user)
    with django_capture_on_commit_callbacks(execute=True):
        user.set_password(STRONG)
        user.save()
    assert [refresh_status(pair.refresh) for pair in sessions] == [401, 401]
    assert refresh_status(bystander.refresh) == 200


def test_a_rolled_back_change_ends_no_session(
    user: User, django_capture_on_commit_callbacks: Any
) -> None:
    pair = tokens_for(user)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        suppress(RuntimeError),
        transaction.atomic(),
    ):
        user.set_password(STRONG)
        user.save()
        raise RuntimeError("the rest of the change failed")
    assert callbacks == []
    assert refresh_status(pair.refresh) == 200


def test_manage_py_changepassword_ends_the_users_sessions(
    user: User, other_user: User, django_capture_on_commit_callbacks: Any
) -> None:
    pair, bystander = tokens_for(user), tokens_for(other_user)
    # The command prompts through getpass; Django's own tests patch it the same way.
    with (
        mock.patch.object(changepassword.Command, "_get_pass", return_value=STRONG),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("changepassword", user.email, stdout=StringIO())
    user.refresh_from_db()
    assert user.check_password(STRONG)
    assert refresh_status(pair.refresh) == 401
    assert refresh_status(bystander.refresh) == 200
