"""``manage.py createsuperuser``: the API's email and password rules, in both
modes, and clean errors instead of tracebacks."""

import io
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.emails import ZWSP
from users.management.commands.createsuperuser import Command
from users.models import User

pytestmark = pytest.mark.django_db

STRONG = "a long and unusual passphrase 42"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    for name in ("EMAIL", "NAME", "PASSWORD"):
        monkeypatch.delenv(f"DJANGO_SUPERUSER_{name}", raising=False)

    def set_environment(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"DJANGO_SUPERUSER_{name.upper()}", value)

    return set_environment


def noinput(**options: str) -> None:
    call_command("createsuperuser", "--noinput", verbosity=0, **options)


def test_manage_py_runs_the_project_command() -> None:
    from django.core.management import get_commands

    assert get_commands()["createsuperuser"] == "users"


# --- --noinput --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "This password is too short."),
        ("password123", "This password is too common."),
        ("8475639201", "This password is entirely numeric."),
        ("opsteam@example", "too similar"),
        ("", "This password is too short."),
    ],
)
def test_noinput_weak_password_is_a_command_error(
    environment: Callable[..., None], password: str, message: str
) -> None:
    environment(email="opsteam@example.com", name="Ops", password=password)
    with pytest.raises(CommandError, match=message) as caught:
        noinput()
    assert str(caught.value).startswith("DJANGO_SUPERUSER_PASSWORD: ")
    assert not User.objects.exists()


def test_noinput_normalises_the_email(environment: Callable[..., None]) -> None:
    environment(email="  Ops@Example.COM ", name="Ops", password=STRONG)
    noinput()
    admin = User.objects.get()
    assert admin.email == "ops@example.com"
    assert admin.role_names == ["admin", "user"]
    assert admin.check_password(STRONG)
    assert admin.email_verified  # typed at the console: REQUIRE_EMAIL_VERIFICATION lets them in


def test_noinput_email_option_is_normalised_too(environment: Callable[..., None]) -> None:
    environment(password=STRONG)
    noinput(email="Ops@Example.com", name="Ops")
    assert User.objects.get().email == "ops@example.com"


@pytest.mark.parametrize(
    "variant", ["URSULA@example.com", " Ursula@Example.Com ", "ursula@\uff45xample.com"]
)
def test_noinput_variant_of_a_taken_email_is_a_clean_error(
    environment: Callable[..., None], user: User, variant: str
) -> None:
    environment(email=variant, name="Ops", password=STRONG)
    with pytest.raises(CommandError, match="That email is already taken"):
        noinput()
    assert User.objects.count() == 1


def test_noinput_email_with_invisible_characters_is_refused(
    environment: Callable[..., None],
) -> None:
    environment(email=f"ops@example.com{ZWSP}", name="Ops", password=STRONG)
    with pytest.raises(CommandError, match="invisible characters"):
        noinput()
    assert not User.objects.exists()


def test_noinput_without_a_password_keeps_djangos_unusable_password(
    environment: Callable[..., None],
) -> None:
    environment(email="ops@example.com", name="Ops")
    noinput()
    assert not User.objects.get().has_usable_password()


def test_a_clash_in_the_database_is_a_clean_error(
    environment: Callable[..., None], user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two operators at once: the address is taken between check and insert."""
    monkeypatch.setattr(Command, "_validate_username", lambda *args: None)
    environment(email="Ursula@Example.com", name="Ops", password=STRONG)
    with pytest.raises(CommandError, match="That email is already taken"):
        noinput()
    assert User.objects.count() == 1  # and the test's transaction is still usable


# --- interactive ------------------------------------------------------------------------------


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Feed the prompts: ``input()`` answers in order, then the two passwords."""

    def feed(inputs: list[str], passwords: list[str]) -> None:
        typed: Iterator[str] = iter(inputs)
        secrets: Iterator[str] = iter(passwords)
        monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
        monkeypatch.setattr("getpass.getpass", lambda prompt="": next(secrets))

    return feed


def interactive() -> str:
    stderr = io.StringIO()
    call_command("createsuperuser", stdin=TTY(), stdout=io.StringIO(), stderr=stderr)
    return stderr.getvalue()


def test_interactive_normalises_the_email(answers: Callable[..., None]) -> None:
    answers([" Ops@Example.COM ", "Ops"], [STRONG, STRONG])
    assert interactive() == ""
    admin = User.objects.get()
    assert (admin.email, admin.name) == ("ops@example.com", "Ops")
    assert admin.check_password(STRONG)


def test_interactive_variant_of_a_taken_email_asks_again(
    answers: Callable[..., None], user: User
) -> None:
    answers(
        ["URSULA@Example.com", f"new@example.com{ZWSP}", "new@example.com", "Ops"], [STRONG] * 2
    )
    errors = interactive()
    assert "Error: That email is already taken." in errors
    assert "invisible characters" in errors
    assert set(User.objects.values_list("email", flat=True)) == {user.email, "new@example.com"}


def test_interactive_email_option_variant_of_a_taken_email(
    answers: Callable[..., None], user: User
) -> None:
    answers(["other@example.com", "Ops"], [STRONG] * 2)
    stderr = io.StringIO()
    call_command(
        "createsuperuser",
        email="Ursula@EXAMPLE.com",
        stdin=TTY(),
        stdout=io.StringIO(),
        stderr=stderr,
    )
    assert "That email is already taken." in stderr.getvalue()
    assert User.objects.filter(email="other@example.com").exists()


def test_interactive_weak_password_is_validated(answers: Callable[..., None]) -> None:
    # Django's own check in this mode; the operator declines to bypass it.
    answers(["ops@example.com", "Ops", "N"], ["password123", "password123", STRONG, STRONG])
    assert "This password is too common." in interactive()
    assert User.objects.get().check_password(STRONG)
