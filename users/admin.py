"""Django admin for operators: list, search, filter, edit roles, bulk actions.

Edits follow the API's rules: the email is normalised before the uniqueness
check (so ``Ann@x.io`` collides with ``ann@x.io`` as a form error, not a
crash), the model's signals invalidate cached reads, bulk actions go through
the service layer, and a password set here (the per-user form, or an
operator's own at /admin/password_change/) ends the user's sessions through
the model's ``users.signals.password_changed``, like every other path.
"Unlock login" lifts the lockouts the shared core keeps (``arcana.core.lockout``):
this admin imports no other app.
"""

import math
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

import users
from arcana.core import lockout
from users.models import (
    Role,
    Roles,
    User,
    UserQuerySet,
    normalize_email,
    validate_normalized_email,
)


def _ids(queryset: QuerySet[User]) -> list[str]:
    return [str(pk) for pk in queryset.values_list("pk", flat=True)]


class EmailNormalisingMixin(forms.ModelForm):  # type: ignore[type-arg]
    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        # Normalising can lengthen an address or make it invalid ("İ", IDNA):
        # check the stored form too, or it overflows the column (a 500 on MySQL).
        User._meta.get_field("email").run_validators(email)
        validate_normalized_email(email)
        return email


class UserAddForm(EmailNormalisingMixin, AdminUserCreationForm):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ("email", "name")


class UserEditForm(EmailNormalisingMixin, UserChangeForm):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = (
            "email",
            "name",
            "password",
            "roles",
            "sync_status",
            "is_active",
            "email_verified",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )
        widgets = {"roles": forms.CheckboxSelectMultiple}


SESSIONS_URL = "admin:authn_refreshtoken_changelist"

admin.site.site_header = "Arcana Cloud administration"
admin.site.site_title = "Arcana Cloud admin"
admin.site.index_title = "Users and access"


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"
    NONE = "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(role, role.capitalize()) for role in Roles.values] + [(self.NONE, "No role")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        if self.value() == self.NONE:
            return queryset.filter(roles__isnull=True)
        if self.value() in Roles.values:
            return queryset.filter(roles__name=self.value())
        return queryset


class _YesNoFilter(admin.SimpleListFilter):
    field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        if self.value() in ("yes", "no"):
            return queryset.filter(**{self.field: self.value() == "yes"})
        return queryset


class ActiveFilter(_YesNoFilter):
    title = "active"
    parameter_name = "active"
    field = "is_active"


class StaffFilter(_YesNoFilter):
    title = "staff (admin site access)"
    parameter_name = "staff"
    field = "is_staff"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):  # type: ignore[type-arg]
    form = UserEditForm
    add_form = UserAddForm
    list_display = ("name", "email", "roles_display", "sync_status", "is_active", "created_at")
    list_filter = (RoleFilter, "sync_status", ActiveFilter, StaffFilter, "email_verified")
    date_hierarchy = "created_at"
    search_fields = ("name", "email")
    ordering = ("-created_at",)
    readonly_fields = (
        "id",
        "created_at",
        "updated_at",
        "last_login",
        # Set by the owner's confirmation link only: an operator may mark an
        # address verified (email_verified), not invent one waiting for it.
        "pending_email",
        "login_lockout",
        "sessions",
    )
    filter_horizontal = ("groups", "user_permissions")
    actions = ["mark_pending_sync", "deactivate", "unlock_login"]
    fieldsets = (
        (None, {"fields": ("id", "email", "email_verified", "pending_email", "name", "password")}),
        ("API", {"fields": ("roles", "sync_status", "is_active")}),
        (
            "Admin site access",
            {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("created_at", "updated_at", "last_login")}),
        ("Login", {"fields": ("login_lockout", "sessions")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("roles")

    def save_model(self, request: HttpRequest, obj: User, form: forms.Form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            # As with POST /users and registration: a new user holds the "user" role.
            obj.roles.set(Role.objects.filter(name=Roles.USER))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[User], search_term: str
    ) -> tuple[QuerySet[User], bool]:
        # The API's search: case-insensitive on emails too, which on MySQL
        # compare byte for byte (users migration 0003).
        term = search_term.strip()
        if not term or not isinstance(queryset, UserQuerySet):
            return super().get_search_results(request, queryset, search_term)
        return queryset.search(term), False

    @admin.display(description="Failed-login lockout")
    def login_lockout(self, obj: User) -> str:
        if obj.pk is None:
            return "-"
        remaining, failures = lockout.account_state(account=normalize_email(obj.email))
        if remaining > 0:
            state = f"Locked for everyone for {math.ceil(remaining / 60)} more minute(s)."
        else:
            state = f"Not locked for everyone ({failures} failed attempt(s) in the window)."
        return (
            f"{state} Locks of single addresses are not listed; the list's action "
            '"Unlock login" lifts every lock of the account.'
        )

    @admin.display(description="Sessions")
    def sessions(self, obj: User) -> str:
        # authn's sessions page, by URL name: this admin imports no other app.
        # Absent where authn's data is elsewhere (microservices' users service).
        try:
            url = reverse(SESSIONS_URL)
        except NoReverseMatch:
            return "Kept by the auth service (not in this admin)."
        if obj.pk is None:
            return "-"
        return format_html(
            '<a href="{}?user_id={}&amp;live=yes">Live sessions of this user</a>'
            " (revoke them there)",
            url,
            obj.pk,
        )

    @admin.display(description="Roles")
    def roles_display(self, obj: User) -> str:
        return ", ".join(obj.role_names)

    def _log_changed(self, request: HttpRequest, changed: list[str], message: str) -> None:
        """A History entry (LogEntry) on each user an action changed."""
        for user in User.objects.filter(pk__in=changed):
            self.log_change(request, user, message)

    @admin.action(description="Mark selected users as pending sync")
    def mark_pending_sync(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        changed = users.service.users_mark_pending_sync(user_ids=_ids(queryset))
        self._log_changed(request, changed, "Marked pending sync.")
        self.message_user(request, f"{len(changed)} user(s) marked pending sync.", messages.SUCCESS)

    @admin.action(description="Deactivate selected users")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        changed = users.service.users_deactivate(user_ids=_ids(queryset))
        self._log_changed(request, changed, "Deactivated.")
        self.message_user(request, f"{len(changed)} user(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Unlock login for selected users (lift failed-login lockouts)")
    def unlock_login(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        emails = list(queryset.values_list("email", flat=True))
        for email in emails:
            # Accounts are locked under their normal form, as the login looks them up.
            lockout.unlock(account=normalize_email(email))
        self.message_user(request, f"{len(emails)} user(s) unlocked.", messages.SUCCESS)
