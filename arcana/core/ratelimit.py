"""Rate limits that services apply themselves, the same on every transport.

DRF's throttles (``arcana.core.throttling``) guard whole public endpoints by client
address. Some limits belong to an operation's rules instead: a password or
email change is limited per user *and* per client address, wherever the call
comes from (REST, gRPC, a later tier). A fixed window per key: ``add`` then
``incr``, which Redis performs atomically, so concurrent calls cannot slip past.
"""

import hashlib
import time
from collections.abc import Iterable

from django.conf import settings

from arcana.core import metrics
from arcana.core.cache import count_up, throttle_cache
from arcana.core.exceptions import Throttled

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"5/min"`` -> ``(5, 60)``, as DRF reads rates (first letter of the period)."""
    count, _, period = rate.partition("/")
    return int(count), _UNITS[period.strip()[0]]


def rate_limit(*, scope: str, idents: Iterable[str]) -> None:
    """Count one attempt against every ident; raise ``Throttled`` if any is over
    ``THROTTLE_RATES[scope]``. Every ident is counted, so an attacker cannot
    dodge one limit by tripping the other first."""
    rate: str | None = settings.THROTTLE_RATES.get(scope)
    if not rate:
        return
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    cache = throttle_cache()
    over = False
    for ident in idents:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        key = f"ratelimit:v1:{scope}:{digest}:{window}"
        over = count_up(cache, key, timeout=period) > limit or over
    if over:
        metrics.throttled(scope=scope)
        raise Throttled(wait=period - (now % period))
