"""The Django admin: listing, search, filters, actions and edits that follow
the API's rules (normalised unique email, no stale cached read)."""

from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for, tokens_for
from tests.factories import UserFactory
from users.models import User

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/users/user/"
STRONG = "a long and unusual passphrase 42"


def change_form(user: User, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "email": user.email,
        "name": user.name,
        "roles": user.role_names,
        "sync_status": user.sync_status,
        "is_active": "on" if user.is_active else "",
        "groups": [],
        "user_permissions": [],
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value not in ("", None)}


def test_changelist_shows_columns_and_never_the_hash(operator: Client, user: User) -> None:
    html = operator.get(CHANGELIST).content.decode()
    assert "Ursula User" in html
    assert "ursula@example.com" in html
    assert "Roles" in html
    assert user.password not in html


def test_search_and_filters(operator: Client) -> None:
    UserFactory.create(name="Findable Fiona", email="fiona@findable.io", sync_status="pending")
    UserFactory.create(name="Hidden Henry", is_active=False, admin=True)
    assert "Findable Fiona" in operator.get(CHANGELIST, {"q": "fiona"}).content.decode()
    assert "Hidden Henry" not in operator.get(CHANGELIST, {"q": "fiona"}).content.decode()
    assert "Findable Fiona" in operator.get(CHANGELIST, {"q": "FINDABLE.IO"}).content.decode()
    pending = operator.get(CHANGELIST, {"sync_status__exact": "pending"}).content.decode()
    assert "Findable Fiona" in pending
    assert "Hidden Henry" not in pending
    inactive = operator.get(CHANGELIST, {"is_active__exact": "0"}).content.decode()
    assert "Hidden Henry" in inactive
    admins = operator.get(CHANGELIST, {"roles__name__exact": "admin"}).content.decode()
    assert "Hidden Henry" in admins
    assert "Findable Fiona" not in admins


def test_change_form_edits_roles_and_invalidates_cache(operator: Client, user: User) -> None:
    api = client_for(user)
    assert api.get("/api/v1/auth/me").json()["roles"] == ["user"]  # cached now
    response = operator.post(
        f"{CHANGELIST}{user.pk}/change/",
        change_form(user, name="Edited In Admin", roles=["user", "admin"]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    me = api.get("/api/v1/auth/me").json()
    assert me["name"] == "Edited In Admin"
    assert me["roles"] == ["admin", "user"]
    assert api.get("/api/v1/users").status_code == 200


def test_change_form_refuses_taken_email_in_other_case(
    operator: Client, user: User, other_user: User
) -> None:
    response = operator.post(
        f"{CHANGELIST}{user.pk}/change/", change_form(user, email="OSCAR@Example.com")
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    user.refresh_from_db()
    assert user.email == "ursula@example.com"


def test_change_form_normalises_email(operator: Client, user: User) -> None:
    operator.post(f"{CHANGELIST}{user.pk}/change/", change_form(user, email="New@Example.COM"))
    user.refresh_from_db()
    assert user.email == "new@example.com"


def test_change_form_checks_the_email_as_it_will_be_stored(operator: Client, user: User) -> None:
    """Same defect as the API's (found by tests/hardening): "İ" doubles in length
    when lower-cased, so 200 of them overflowed the column after validation."""
    email = "İ" * 200 + "@example.com"
    response = operator.post(f"{CHANGELIST}{user.pk}/change/", change_form(user, email=email))
    assert response.status_code == 200  # the form again, with its error
    assert "Ensure this value has at most 254 characters" in response.content.decode()
    user.refresh_from_db()
    assert user.email == "ursula@example.com"


def test_add_user_form(operator: Client) -> None:
    response = operator.post(
        f"{CHANGELIST}add/",
        {
            "email": "Added@Example.com",
            "name": "Added Person",
            "password1": "a long and unusual passphrase 42",
            "password2": "a long and unusual passphrase 42",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    added = User.objects.get(email="added@example.com")
    assert added.check_password("a long and unusual passphrase 42")


def test_add_user_form_refuses_duplicate_in_other_case(operator: Client, user: User) -> None:
    response = operator.post(
        f"{CHANGELIST}add/",
        {
            "email": "URSULA@example.com",
            "name": "Copy",
            "password1": "a long and unusual passphrase 42",
            "password2": "a long and unusual passphrase 42",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200
    assert User.objects.filter(email="ursula@example.com").count() == 1


def test_actions_mark_pending_and_deactivate(
    operator: Client, user: User, other_user: User
) -> None:
    api = client_for(user)
    assert api.get("/api/v1/auth/me").status_code == 200
    operator.post(
        CHANGELIST,
        {"action": "mark_pending_sync", "_selected_action": [str(user.pk), str(other_user.pk)]},
    )
    assert api.get("/api/v1/auth/me").json()["sync_status"] == "pending"
    operator.post(CHANGELIST, {"action": "deactivate", "_selected_action": [str(user.pk)]})
    assert api.get("/api/v1/auth/me").status_code == 401
    other_user.refresh_from_db()
    assert other_user.is_active
    assert other_user.sync_status == "pending"


def refresh_status(token: str) -> int:
    response = APIClient().post("/api/v1/auth/refresh", {"refresh": token}, format="json")
    return int(response.status_code)


def test_admin_password_form_sets_password_and_ends_sessions(
    operator: Client, user: User, other_user: User, django_capture_on_commit_callbacks: Any
) -> None:
    pair, bystander = tokens_for(user), tokens_for(other_user)
    page = operator.get(f"{CHANGELIST}{user.pk}/password/")
    assert page.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            f"{CHANGELIST}{user.pk}/password/",
            {
                "password1": "an operator chosen passphrase 7",
                "password2": "an operator chosen passphrase 7",
                "usable_password": "true",
            },
        )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("an operator chosen passphrase 7")
    assert refresh_status(pair.refresh) == 401
    assert refresh_status(bystander.refresh) == 200


def test_admin_disabling_password_login_ends_sessions(
    operator: Client, user: User, django_capture_on_commit_callbacks: Any
) -> None:
    pair = tokens_for(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            f"{CHANGELIST}{user.pk}/password/",
            {"usable_password": "false", "unset-password": "1"},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert refresh_status(pair.refresh) == 401


def test_admin_edit_without_a_password_ends_no_session(
    operator: Client, user: User, django_capture_on_commit_callbacks: Any
) -> None:
    pair = tokens_for(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            f"{CHANGELIST}{user.pk}/change/", change_form(user, name="Edited In Admin")
        )
    assert response.status_code == 302
    assert refresh_status(pair.refresh) == 200


def test_operator_changing_their_own_password_ends_their_api_sessions(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """/admin/password_change/: Django's own view and form, no code of ours."""
    old = "the operators first passphrase 1"
    new = "the operators second passphrase 2"
    admin = User.objects.create_superuser(email="self@example.com", name="Self", password=old)
    pair = tokens_for(admin)
    client = Client()
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/password_change/",
            {"old_password": old, "new_password1": new, "new_password2": new},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/admin/password_change/done/"
    admin.refresh_from_db()
    assert admin.check_password(new)
    assert refresh_status(pair.refresh) == 401
    # Django keeps the operator's admin (cookie) session; only API tokens end.
    assert client.get(CHANGELIST).status_code == 200


def test_delete_in_admin_invalidates_cache(operator: Client, user: User) -> None:
    api = client_for(user)
    assert api.get("/api/v1/auth/me").status_code == 200
    response = operator.post(f"{CHANGELIST}{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert api.get("/api/v1/auth/me").status_code == 401


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_bulk_actions_count_what_they_changed_and_write_history(
    operator: Client, user: User, other_user: User
) -> None:
    both = [str(user.pk), str(other_user.pk)]
    first = operator.post(
        CHANGELIST, {"action": "deactivate", "_selected_action": [str(user.pk)]}, follow=True
    )
    assert "1 user(s) deactivated." in _messages(first)
    again = operator.post(
        CHANGELIST, {"action": "deactivate", "_selected_action": both}, follow=True
    )
    assert "1 user(s) deactivated." in _messages(again)  # the first was inactive already
    history = LogEntry.objects.filter(object_id=str(user.pk), action_flag=CHANGE)
    assert [entry.get_change_message() for entry in history] == ["Deactivated."]
    assert LogEntry.objects.filter(object_id=str(other_user.pk)).count() == 1
    page = operator.get(f"{CHANGELIST}{user.pk}/history/")
    assert "Deactivated." in page.content.decode()


def test_filters_read_well_and_find_users_without_a_role(
    operator: Client, user: User, other_user: User
) -> None:
    other_user.roles.clear()
    page = operator.get(CHANGELIST)
    html = page.content.decode()
    for label in ("By role", "No role", "By active", "By staff (admin site access)"):
        assert label in html, label
    assert "By is active" not in html
    no_role = operator.get(CHANGELIST, {"role": "none"})
    assert list(no_role.context["cl"].result_list) == [other_user]
    inactive = operator.get(CHANGELIST, {"active": "no"})
    assert list(inactive.context["cl"].result_list) == []
    dated = operator.get(CHANGELIST, {"created_at__year": str(user.created_at.year)})
    assert dated.status_code == 200
    assert f"?created_at__year={user.created_at.year}" in html  # the date drill-down


def test_the_site_names_the_product(operator: Client) -> None:
    html = operator.get("/admin/").content.decode()
    assert "Arcana Cloud administration" in html


def test_the_history_page_shows_what_an_admin_did_through_the_api(
    operator: Client, admin_user: User
) -> None:
    created = client_for(admin_user).post(
        "/api/v1/users",
        {"name": "Via Api", "email": "via.api@example.com", "password": STRONG},
        format="json",
    )
    page = operator.get(f"{CHANGELIST}{created.json()['id']}/history/").content.decode()
    assert "Added through the API." in page
    assert admin_user.email in page  # who


def test_the_user_page_shows_the_account_lockout(
    operator: Client, user: User, settings: Any
) -> None:
    settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES = 3
    page = f"{CHANGELIST}{user.pk}/change/"
    assert "Not locked for everyone (0 failed attempt(s)" in operator.get(page).content.decode()
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        APIClient(REMOTE_ADDR=address).post(
            "/api/v1/auth/login", {"email": user.email, "password": "wrong"}, format="json"
        )
    assert "Locked for everyone for 15 more minute(s)." in operator.get(page).content.decode()
    operator.post(CHANGELIST, {"action": "unlock_login", "_selected_action": [str(user.pk)]})
    assert "Not locked for everyone (0 failed attempt(s)" in operator.get(page).content.decode()


def test_the_delete_confirmation_names_what_goes_with_the_user(
    operator: Client, admin_user: User
) -> None:
    html = operator.get(f"{CHANGELIST}{admin_user.pk}/delete/").content.decode()
    assert "object (" not in html
    assert "User-role relationship: role admin" in html


def test_operators_see_and_revoke_a_users_sessions(
    operator: Client, user: User, other_user: User
) -> None:
    mine, theirs = tokens_for(user), tokens_for(other_user)
    page = operator.get(f"{CHANGELIST}{user.pk}/change/").content.decode()
    sessions = f"/admin/authn/refreshtoken/?user_id={user.pk}&amp;live=yes"
    assert sessions in page
    listed = operator.get("/admin/authn/refreshtoken/", {"user_id": str(user.pk), "live": "yes"})
    rows = list(listed.context["cl"].result_list)
    assert [row.user_id for row in rows] == [str(user.pk)]
    assert mine.refresh not in listed.content.decode()  # the token itself is never shown
    done = operator.post(
        "/admin/authn/refreshtoken/",
        {"action": "revoke", "_selected_action": [str(rows[0].pk)]},
        follow=True,
    )
    assert "1 refresh token(s) revoked." in _messages(done)
    assert refresh_status(mine.refresh) == 401
    assert refresh_status(theirs.refresh) == 200
    assert operator.get("/admin/authn/refreshtoken/add/").status_code == 403


def test_email_verification_is_filtered_and_shown(
    operator: Client, user: User, other_user: User
) -> None:
    User.objects.filter(pk=user.pk).update(email_verified=True, pending_email="new@example.com")
    html = operator.get(CHANGELIST).content.decode()
    assert "By email verified" in html
    verified = operator.get(CHANGELIST, {"email_verified__exact": "1"})
    listed = set(verified.context["cl"].result_list)
    assert user in listed  # the operator too: made by createsuperuser
    assert other_user not in listed
    page = operator.get(f"{CHANGELIST}{user.pk}/change/")
    form = page.context["adminform"].form
    assert "email_verified" in form.fields  # an operator may confirm an address by hand
    assert "pending_email" not in form.fields  # only its owner's link confirms it
    assert "new@example.com" in page.content.decode()
