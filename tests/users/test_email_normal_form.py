"""One normal form per address: NFKC, lower case, the domain as IDNA; addresses
with invisible characters refused everywhere an address is accepted, and
never a 500 where one is only looked up (login)."""

import unicodedata

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.emails import FULLWIDTH_E, INVISIBLE, LOOKALIKES, SOFT_HYPHEN, ZWSP
from tests.factories import DEFAULT_PASSWORD
from users.models import (
    DEFAULT_IGNORABLE_RANGES,
    INVISIBLE_CHARACTERS_MESSAGE,
    User,
    has_default_ignorable,
    normalize_email,
    validate_normalized_email,
)

STRONG = "a long and unusual passphrase 42"


# --- the normaliser and its validator --------------------------------------------------------


def test_normal_form_is_nfkc_lower_case_and_idna() -> None:
    assert normalize_email("  Ann@Example.COM ") == "ann@example.com"
    assert normalize_email(f"homo@{FULLWIDTH_E}xample.com") == "homo@example.com"
    assert normalize_email("ann@Bücher.DE") == "ann@xn--bcher-kva.de"
    assert normalize_email("ann@xn--bcher-kva.de") == "ann@xn--bcher-kva.de"
    assert normalize_email("ann@例え.テスト") == "ann@xn--r8jz45g.xn--zckzah"


@pytest.mark.parametrize(
    "email",
    [*LOOKALIKES, *INVISIBLE, "İ" * 3 + "@Bücher.de", "a@xn--zz.com", "no-at-sign", "a@[1.2.3.4]"],
)
def test_normal_form_is_stable(email: str) -> None:
    once = normalize_email(email)
    assert normalize_email(once) == once
    assert unicodedata.is_normalized("NFKC", once)


def test_normaliser_keeps_invisible_characters_for_the_validator() -> None:
    """IDNA alone would map a zero-width space in a domain to nothing and make
    the address collide silently; the normaliser keeps it so it is refused."""
    assert normalize_email(f"homo@example.com{ZWSP}") == f"homo@example.com{ZWSP}"
    assert normalize_email(f"homo@exa{SOFT_HYPHEN}mple.com") == f"homo@exa{SOFT_HYPHEN}mple.com"


@pytest.mark.parametrize("email", INVISIBLE)
def test_validator_refuses_invisible_characters(email: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_normalized_email(normalize_email(email))
    assert caught.value.messages == [INVISIBLE_CHARACTERS_MESSAGE]


@pytest.mark.parametrize(
    "email", ["a@xn--zz.com", "a@xn--bcher-kva.ab--c.de", "a@" + "ä" * 60 + ".de"]
)
def test_validator_refuses_domains_without_an_idna_form(email: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_normalized_email(normalize_email(email))
    assert caught.value.messages == ["Enter a valid email address."]


@pytest.mark.parametrize(
    "email", ["ann@example.com", "ann@xn--bcher-kva.de", "ann@[127.0.0.1]", "ann@localhost"]
)
def test_validator_accepts_normal_addresses(email: str) -> None:
    validate_normalized_email(email)


def test_every_listed_range_is_invisible() -> None:
    # The table is copied from DerivedCoreProperties.txt; its members are all
    # format, nonspacing, filler or unassigned code points, never visible ones.
    for low, high in DEFAULT_IGNORABLE_RANGES:
        for point in (low, high):
            character = chr(point)
            assert has_default_ignorable(character)
            assert unicodedata.category(character) in {"Cf", "Mn", "Lo", "Cn"}, hex(point)
    for visible in "a-_.@é1\u00acÿ\u2010":  # neighbours of the ranges, hyphens included
        assert not has_default_ignorable(visible)


def test_model_save_refuses_invisible_characters(db: object) -> None:
    with pytest.raises(ValueError, match="invisible characters"):
        User(name="Sneaky", email=f"homo@example.com{ZWSP}").save()
    with pytest.raises(ValueError, match="invisible characters"):
        User.objects.create_user(email=f"ho{ZWSP}mo@example.com", name="Sneaky")
    assert not User.objects.exists()


def test_natural_key_lookup_uses_the_normal_form(user: User) -> None:
    assert User.objects.get_by_natural_key("  URSULA@Example.com") == user


# --- REST -------------------------------------------------------------------------------------


def register(client: APIClient, email: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/v1/auth/register",
        {"name": "Homo", "email": email, "password": STRONG},
        format="json",
    )
    return response.status_code, response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("email", LOOKALIKES)
def test_register_lookalike_of_a_taken_address_is_409(anon_client: APIClient, email: str) -> None:
    assert register(anon_client, "homo@example.com")[0] == 201
    status, body = register(anon_client, email)
    assert (status, body["code"]) == (409, "email_taken")
    assert User.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("email", INVISIBLE)
def test_register_with_invisible_characters_is_400(anon_client: APIClient, email: str) -> None:
    status, body = register(anon_client, email)
    assert status == 400
    assert INVISIBLE_CHARACTERS_MESSAGE in body["errors"]["email"]  # type: ignore[index]
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("email", ["homo@xn--zz.com", "homo@-bad-.com", "homo@exa_mple.com"])
def test_register_with_an_undecodable_domain_is_400(anon_client: APIClient, email: str) -> None:
    status, body = register(anon_client, email)
    assert (status, body) == (400, {"errors": {"email": ["Enter a valid email address."]}})


@pytest.mark.django_db
def test_register_stores_an_internationalised_domain_as_idna(anon_client: APIClient) -> None:
    status, body = register(anon_client, "Ann@Bücher.de")
    assert status == 201
    assert body["user"]["email"] == "ann@xn--bcher-kva.de"  # type: ignore[index]
    login = anon_client.post(
        "/api/v1/auth/login", {"email": "ann@bücher.DE", "password": STRONG}, format="json"
    )
    assert login.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "email",
    [
        *INVISIBLE,
        "ursula@example.com\u200b",
        "ursula@xn--zz.com",
        "ursula@" + "ä" * 60 + ".com",  # a label too long for IDNA
        "@",
    ],
)
def test_login_with_an_unusable_address_is_401(
    anon_client: APIClient, user: User, email: str
) -> None:
    response = anon_client.post(
        "/api/v1/auth/login", {"email": email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")


@pytest.mark.django_db
def test_login_finds_a_lookalike_spelling_of_the_address(
    anon_client: APIClient, user: User
) -> None:
    response = anon_client.post(
        "/api/v1/auth/login",
        {"email": f"ursula@{FULLWIDTH_E}xample.com", "password": DEFAULT_PASSWORD},
        format="json",
    )
    assert response.status_code == 200


@pytest.mark.django_db
def test_admin_create_and_update_refuse_invisible_characters(
    admin_client: APIClient, user: User
) -> None:
    created = admin_client.post(
        "/api/v1/users",
        {"name": "X", "email": f"x@example.com{ZWSP}", "password": STRONG},
        format="json",
    )
    assert created.status_code == 400
    assert INVISIBLE_CHARACTERS_MESSAGE in created.json()["errors"]["email"]
    updated = client_for(user).patch(
        f"/api/v1/users/{user.pk}", {"email": f"ursula@exa{SOFT_HYPHEN}mple.com"}, format="json"
    )
    assert updated.status_code == 400
    assert INVISIBLE_CHARACTERS_MESSAGE in updated.json()["errors"]["email"]
    lookalike = admin_client.patch(
        f"/api/v1/users/{user.pk}", {"email": "ada@\uff45xample.com"}, format="json"
    )
    assert (lookalike.status_code, lookalike.json()["code"]) == (409, "email_taken")
    user.refresh_from_db()
    assert user.email == "ursula@example.com"


# --- admin ------------------------------------------------------------------------------------


def add_form(email: str) -> dict[str, str]:
    return {
        "email": email,
        "name": "Added Person",
        "password1": STRONG,
        "password2": STRONG,
        "usable_password": "true",
    }


@pytest.mark.parametrize("email", [f"homo@example.com{ZWSP}", f"homo@exa{SOFT_HYPHEN}mple.com"])
def test_admin_add_form_refuses_invisible_characters(operator: Client, email: str) -> None:
    response = operator.post("/admin/users/user/add/", add_form(email))
    assert response.status_code == 200  # the form again, with its error
    assert "invisible characters" in response.content.decode()
    assert not User.objects.filter(name="Added Person").exists()


def test_admin_add_form_refuses_a_lookalike_of_a_taken_address(operator: Client) -> None:
    assert operator.post("/admin/users/user/add/", add_form("homo@example.com")).status_code == 302
    response = operator.post("/admin/users/user/add/", add_form(f"homo@{FULLWIDTH_E}xample.com"))
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(name="Added Person").count() == 1


def test_admin_add_form_refuses_an_undecodable_domain(operator: Client) -> None:
    response = operator.post("/admin/users/user/add/", add_form("homo@xn--zz.com"))
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert not User.objects.filter(name="Added Person").exists()


# --- rows stored before the normal form changed ---------------------------------------------


@pytest.mark.django_db
def test_migration_brings_old_rows_to_the_normal_form() -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("users.migrations.0004_emails_in_the_new_normal_form")
    # bulk_create skips save(), so these are stored as the old normaliser left them.
    User.objects.bulk_create(
        [
            User(name="Ann", email="ann@bücher.de"),
            User(name="Bob", email="bob@bücher.de"),
            User(name="Bob Again", email="bob@xn--bcher-kva.de"),
            User(name="Carl", email="\uff43arl@example.com"),
            User(name="Dora", email="dora@example.com"),
        ]
    )
    migration.forwards(apps, None)
    emails = dict(User.objects.values_list("name", "email"))
    assert emails == {
        "Ann": "ann@xn--bcher-kva.de",
        "Bob": "bob@bücher.de",  # its normal form is taken: left for an operator
        "Bob Again": "bob@xn--bcher-kva.de",
        "Carl": "carl@example.com",
        "Dora": "dora@example.com",
    }
