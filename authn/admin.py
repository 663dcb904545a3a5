"""authn in the Django admin: the login form (the API login's throttle and
lockout) and, where authn's data is local, the sessions (refresh tokens) with
a "revoke" action. The users app's user page links here by URL name."""

import math
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

import authn
from arcana.core.throttling import ScopedThrottle
from authn.backends import REFUSAL_ATTRIBUTE
from authn.models import RefreshToken


class _LoginScope:
    throttle_scope = "login"


class AdminLoginForm(AdminAuthenticationForm):
    """Throttled per client address with the API login's counter (scope
    ``login``); a locked account is refused with a message that says so."""

    def clean(self) -> dict[str, Any]:
        if self.request is not None:
            throttle = ScopedThrottle()
            if not throttle.allow_request(self.request, _LoginScope()):
                wait = math.ceil(throttle.wait() or 1)
                raise ValidationError(
                    f"Too many login attempts; try again in {wait} seconds.", code="throttled"
                )
        try:
            return super().clean()
        except ValidationError:
            refusal = getattr(self.request, REFUSAL_ATTRIBUTE, None)
            if refusal is not None:
                raise ValidationError(refusal.message, code="locked") from None
            raise


admin.site.login_form = AdminLoginForm


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Live"), ("no", "Ended (revoked or expired)")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[RefreshToken]
    ) -> QuerySet[RefreshToken]:
        live = {"revoked_at__isnull": True, "expires_at__gt": timezone.now()}
        if self.value() == "yes":
            return queryset.filter(**live)
        if self.value() == "no":
            return queryset.exclude(**live)
        return queryset


class SessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Refresh tokens, for operators: whose, since when, until when, live or not;
    "Revoke" ends the sessions they belong to (their whole families). Read-only
    otherwise: tokens are made by logins, not by hand."""

    list_display = ("user_id", "family", "created_at", "expires_at", "state")
    list_filter = (LiveFilter,)
    search_fields = ("=user_id", "=family")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ["revoke"]
    exclude = ("token",)  # the token itself is a credential: never shown

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="State")
    def state(self, obj: RefreshToken) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        return "live" if obj.expires_at > timezone.now() else "expired"

    @admin.action(description="Revoke the selected sessions (their refresh tokens die)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[RefreshToken]) -> None:
        families = sorted(set(queryset.values_list("family", flat=True)))
        count = authn.service.sessions_revoke(sessions=families)
        self.message_user(request, f"{count} refresh token(s) revoked.", messages.SUCCESS)


# The sessions live where authn's data does: not in the users service of a
# microservices deployment (the auth service serves no admin), nor in a tier
# without a database.
if settings.ARCANA_DEPLOYMENT.holds_database and settings.ARCANA_DEPLOYMENT.owns("authn"):
    admin.site.register(RefreshToken, SessionAdmin)
