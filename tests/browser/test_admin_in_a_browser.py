"""The Django admin as an operator uses it, in Chromium: sign in, the lockout
after repeated failures, search, each filter, both bulk actions, editing
roles, setting a password, revoking a session."""

import re
from typing import Any

import pytest
from django.contrib.auth import authenticate

from authn.models import RefreshToken
from tests.conftest import tokens_for
from tests.factories import UserFactory
from users.models import Role, Roles, SyncStatus, User

# serialized_rollback: the roles the migrations seed are back for the tests after it.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

OPERATOR = ("operator@example.com", "an operator's long passphrase 7")
NEW_PASSWORD = "a freshly chosen passphrase 42"


@pytest.fixture
def people(db: Any) -> dict[str, User]:
    operator = User.objects.create_superuser(
        email=OPERATOR[0], name="Olive Operator", password=OPERATOR[1]
    )
    ann = UserFactory.create(name="Ann Example", email="ann@example.com")
    bob = UserFactory.create(name="Bob Norole", email="bob@example.com")
    bob.roles.clear()
    carol = UserFactory.create(name="Carol Gone", email="carol@example.com", is_active=False)
    target = UserFactory.create(name="Tess Target", email="tess@example.com")
    return {"operator": operator, "ann": ann, "bob": bob, "carol": carol, "tess": target}


def navigating(page: Any, action: Any) -> None:
    """Do ``action`` (a click, an Enter) and wait for the page it loads."""
    with page.expect_navigation():
        action()


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    navigating(page, lambda: page.click("input[type=submit]"))


def names_listed(page: Any) -> set[str]:
    return {cell.strip() for cell in page.locator("#result_list tbody th").all_inner_texts()}


def act(page: Any, action: str, people: list[User]) -> str:
    for person in people:
        page.check(f"input[name=_selected_action][value='{person.pk}']")
    page.select_option("select[name=action]", action)
    navigating(page, lambda: page.click("button[name=index]"))
    return str(page.locator("ul.messagelist").inner_text())


def test_an_operators_day_in_the_admin(
    page: Any, live_server: Any, people: dict[str, User]
) -> None:
    base = live_server.url
    ann, bob, carol, tess = people["ann"], people["bob"], people["carol"], people["tess"]

    # Five wrong passwords for one account from this browser lock it, even
    # for the right password; the page says so.
    for _ in range(5):
        sign_in(page, base, tess.email, "not the password at all")
        assert "Please enter the correct" in page.content()
    sign_in(page, base, tess.email, "whatever, it is locked")
    assert "Too many failed attempts for this account" in page.content()

    sign_in(page, base, *OPERATOR)
    assert "Arcana Cloud administration" in page.content()
    page.goto(f"{base}/admin/users/user/")

    # Search.
    page.fill("#searchbar", "ann@")
    navigating(page, lambda: page.press("#searchbar", "Enter"))
    assert names_listed(page) == {ann.name}

    # Each filter.
    filters = {
        "No role": {bob.name},
        "Admin": {people["operator"].name},
    }
    for label, expected in filters.items():
        page.goto(f"{base}/admin/users/user/")
        navigating(page, lambda label=label: page.click(f"#changelist-filter >> text={label}"))
        assert names_listed(page) == expected, label
    page.goto(f"{base}/admin/users/user/?active=no")
    assert names_listed(page) == {carol.name}
    page.goto(f"{base}/admin/users/user/")
    navigating(page, lambda: page.click("#changelist-filter >> text=Pending"))
    assert names_listed(page) == set()

    # Both bulk actions, counting what they changed.
    page.goto(f"{base}/admin/users/user/")
    assert "2 user(s) marked pending sync." in act(page, "mark_pending_sync", [ann, bob])
    assert "1 user(s) deactivated." in act(page, "deactivate", [ann, carol])  # carol already was
    ann.refresh_from_db()
    assert (ann.sync_status, ann.is_active) == (SyncStatus.PENDING, False)

    # Edit roles: Bob becomes an admin.
    page.goto(f"{base}/admin/users/user/{bob.pk}/change/")
    admin_role = Role.objects.get(name=Roles.ADMIN)
    page.check(f"input[name=roles][value='{admin_role.pk}']")
    navigating(page, lambda: page.click("input[name=_save]"))
    assert "was changed successfully" in page.content()
    assert Roles.ADMIN in bob.role_names

    # Set a password through Django's own form.
    page.goto(f"{base}/admin/users/user/{bob.pk}/change/")
    navigating(page, lambda: page.click("a[href$='/password/']"))
    page.fill("#id_password1", NEW_PASSWORD)
    page.fill("#id_password2", NEW_PASSWORD)
    navigating(page, lambda: page.click("input[type=submit]"))
    assert "Password changed successfully" in page.content()
    assert authenticate(username=bob.email, password=NEW_PASSWORD) is not None

    # Revoke a session from the user's page.
    session = tokens_for(tess)
    page.goto(f"{base}/admin/users/user/{tess.pk}/change/")
    navigating(page, lambda: page.click("text=Live sessions of this user"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    page.check("#result_list tbody input[name=_selected_action]")
    page.select_option("select[name=action]", "revoke")
    navigating(page, lambda: page.click("button[name=index]"))
    assert re.search(r"1 refresh token\(s\) revoked", page.content())
    assert RefreshToken.objects.get(token=session.refresh).revoked_at is not None
