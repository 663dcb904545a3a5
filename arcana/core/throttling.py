"""Rate limits on login, register and refresh, shared by REST and gRPC.

Counters live in the default cache (Redis in production, so every process
shares them). Rates come from ``settings.THROTTLE_RATES`` at request time, so
they follow the environment and test overrides.
"""

from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from arcana.core import metrics
from arcana.core.cache import throttle_cache


class ScopedThrottle(SimpleRateThrottle):
    """Per client address and scope; the view names its ``throttle_scope``."""

    def __init__(self) -> None:  # rate is resolved per request, not at import
        pass

    def allow_request(self, request: Any, view: Any) -> bool:
        scope: str = getattr(view, "throttle_scope", None) or ""
        if not scope:
            return True
        self.scope = scope
        self.cache = throttle_cache()
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        allowed: bool = super().allow_request(request, view)
        if not allowed:
            metrics.throttled(scope=scope)
        return allowed

    def get_rate(self) -> str | None:
        rates: dict[str, str] = settings.THROTTLE_RATES
        return rates.get(self.scope or "")

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
