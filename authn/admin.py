"""The admin site's login form: the API login's throttle and lockout."""

import math
from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from arcana.core.throttling import ScopedThrottle
from authn.backends import REFUSAL_ATTRIBUTE


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
