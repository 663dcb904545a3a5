"""``/metrics``: this process's Prometheus metrics, for the scraper only."""

import hmac
import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from arcana.core import metrics
from arcana.core.rest import error_json

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _allowed_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    # The settings checked every entry at start-up.
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def scraper_allowed(request: HttpRequest) -> bool:
    """From an allowed address (``REMOTE_ADDR``: the peer itself, not a header
    it could forge), or with ``Authorization: Bearer <METRICS_TOKEN>``."""
    token: str = settings.METRICS_TOKEN
    if token:
        kind, _, presented = request.headers.get("Authorization", "").partition(" ")
        if kind.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode()):
            return True
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        peer in network for network in _allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        return error_json(404, "Not found.", "not_found")
    if request.method not in ("GET", "HEAD"):
        return error_json(405, f'Method "{request.method}" not allowed.', "method_not_allowed")
    if not scraper_allowed(request):
        return error_json(403, "Metrics are not served to this client.", "permission_denied")
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
