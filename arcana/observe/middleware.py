"""One measurement per REST request: its metrics (route, method, status,
latency) and its log line (``arcana.observe.logs``)."""

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from arcana.core import metrics, tracing
from arcana.core.context import acting_user, request_id
from arcana.observe.logs import request_line
from arcana.observe.views import metrics_view

GetResponse = Callable[[HttpRequest], HttpResponse]

# A route label for requests no URL pattern matched (a 404 before any view):
# the raw path would give every scanner's probe a time series of its own.
UNMATCHED = "<unmatched>"
METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered (``api/v1/users/<uuid:pk>``), never the path."""
    match = request.resolver_match
    return match.route if match is not None else UNMATCHED


def method_of(request: HttpRequest) -> str:
    method = request.method or ""
    return method if method in _METHODS else "OTHER"


class ObserveMiddleware:
    """Counts and times every request by route (``METRICS_ENABLED``) and logs
    it (``REQUEST_LOG``); not installed at all when neither is on. Inside
    ``RequestIdMiddleware``: the request id and the acting user (set by
    authentication) are still those of this request when it logs."""

    def __init__(self, get_response: GetResponse) -> None:
        self.metrics = settings.METRICS_ENABLED
        self.log = settings.REQUEST_LOG
        if not (self.metrics or self.log):
            raise MiddlewareNotUsed()  # /metrics then goes to the view, which says 404
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == METRICS_PATH:
            # Answered here, before anything reads the Host header: a scraper
            # addresses a pod or container by its own name or IP, which
            # DJANGO_ALLOWED_HOSTS need not list, and the metrics build no
            # URL from it. Who may read them is the view's to say.
            return metrics_view(request)
        started = time.perf_counter_ns()
        response = self.get_response(request)
        elapsed = time.perf_counter_ns() - started
        route, method, status = route_of(request), method_of(request), response.status_code
        if self.metrics:
            metrics.http_request(route=route, method=method, status=status, seconds=elapsed * 1e-9)
        if self.log:
            request_line(
                transport="http",
                request_id=request_id.get(),
                trace_id=tracing.current_trace_id(),
                user_id=acting_user.get(),
                route=route,
                method=method,
                status=status,
                duration_ms=round(elapsed * 1e-6, 3),
            )
        return response
