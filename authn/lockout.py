"""Per-account lockout after repeated failed logins.

The per-address rate limit stops one client hammering many accounts; this
stops many clients (a botnet) hammering one account. After
``LOGIN_LOCKOUT_FAILURES`` failures within ``LOGIN_LOCKOUT_SECONDS`` the
account refuses logins, even with the right password, until the window ends:
the lock always expires, so a victim is never locked out for good. Unknown
emails are counted too, so a lock says nothing about whether an account
exists. Keys hold a hash of the address, never the address itself.
"""

import hashlib
import time

from django.conf import settings

from arcana.cache import throttle_cache
from arcana.exceptions import Throttled
from users.models import normalize_email


def _keys(email: str) -> tuple[str, str]:
    digest = hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
    return f"lockout:v1:failures:{digest}", f"lockout:v1:locked:{digest}"


def login_lock_check(*, email: str) -> None:
    """Raise ``Throttled`` (429 / RESOURCE_EXHAUSTED) while the account is locked."""
    _, locked_key = _keys(email)
    until = throttle_cache().get(locked_key)
    if until is not None:
        remaining = float(until) - time.time()
        if remaining > 0:
            raise Throttled(
                wait=remaining, message="Too many failed logins for this account; try again later."
            )


def login_failure_record(*, email: str) -> None:
    failures_key, locked_key = _keys(email)
    window = settings.LOGIN_LOCKOUT_SECONDS
    cache = throttle_cache()
    cache.add(failures_key, 0, timeout=window)
    try:
        failures = cache.incr(failures_key)
    except ValueError:  # expired between add and incr
        cache.set(failures_key, 1, timeout=window)
        failures = 1
    if failures >= settings.LOGIN_LOCKOUT_FAILURES:
        cache.set(locked_key, time.time() + window, timeout=window)
        cache.delete(failures_key)


def login_failures_clear(*, email: str) -> None:
    failures_key, _ = _keys(email)
    throttle_cache().delete(failures_key)
