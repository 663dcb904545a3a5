"""One measurement per REST request: its metrics (route, method, status, latency)."""

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from arcana.core import metrics

GetResponse = Callable[[HttpRequest], HttpResponse]

# A route label for requests no URL pattern matched (a 404 before any view):
# the raw path would give every scanner's probe a time series of its own.
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NS = 1e-9


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered (``api/v1/users/<uuid:pk>``), never the path."""
    match = request.resolver_match
    return match.route if match is not None else UNMATCHED


def method_of(request: HttpRequest) -> str:
    method = request.method or ""
    return method if method in _METHODS else "OTHER"


class ObserveMiddleware:
    """Counts and times every request by route (``METRICS_ENABLED``); not
    installed at all when nothing is measured."""

    def __init__(self, get_response: GetResponse) -> None:
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed()
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter_ns()
        response = self.get_response(request)
        metrics.http_request(
            route=route_of(request),
            method=method_of(request),
            status=response.status_code,
            seconds=(time.perf_counter_ns() - started) * _NS,
        )
        return response
