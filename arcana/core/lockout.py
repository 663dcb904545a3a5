"""Lockout after repeated failed credential checks.

The per-address rate limit stops one client hammering many accounts; this
stops guessing at one account. Two counters, both over
``LOGIN_LOCKOUT_SECONDS``:

- per (account, client address): after ``LOGIN_LOCKOUT_FAILURES`` failures
  that client is refused for that account, even with the right password;
- per account, from every address: a much higher ceiling,
  ``LOGIN_LOCKOUT_ACCOUNT_FAILURES``, against a botnet spreading its guesses.

So an anonymous attacker can lock only themselves out of somebody else's
account: the owner, from their own address, still gets in. Every lock
expires. Operators lift them early with :func:`unlock` (the admin's "unlock"
action), which moves the account to a new *generation*: every key of the old
one is orphaned at once and expires on its own (cache keys cannot be listed).

Failures of every credential check count here (API login on both protocols,
the Django admin login, the current password of a password or email change),
and unknown accounts are counted like real ones, so a lock says nothing about
whether an account exists. Keys hold hashes, never an address or an email.
"""

import hashlib
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import BaseCache

from arcana.core import metrics
from arcana.core.cache import count_up, throttle_cache
from arcana.core.exceptions import Throttled

T = TypeVar("T")

LOCKED_MESSAGE = "Too many failed attempts for this account; try again later."


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _generation(cache: BaseCache, account_digest: str) -> str:
    return str(cache.get(f"lockout:v2:gen:{account_digest}", 0))


def _keys(account: str, client: str) -> dict[str, str]:
    account_digest = _digest(account)
    base = f"lockout:v2:{account_digest}:{_generation(throttle_cache(), account_digest)}"
    client_digest = _digest(client)
    return {
        "pair_failures": f"{base}:f:{client_digest}",
        "pair_locked": f"{base}:l:{client_digest}",
        "account_failures": f"{base}:f",
        "account_locked": f"{base}:l",
    }


def lock_check(*, account: str, client: str) -> None:
    """Raise ``Throttled`` (429 / RESOURCE_EXHAUSTED) while this client, or
    everyone, is locked out of ``account``."""
    keys = _keys(account, client)
    locks = throttle_cache().get_many([keys["pair_locked"], keys["account_locked"]])
    now = time.time()
    remaining = max((float(until) - now for until in locks.values()), default=0.0)
    if remaining > 0:
        metrics.lockout(event="refused")
        raise Throttled(wait=remaining, message=LOCKED_MESSAGE)


def failure_record(*, account: str, client: str) -> None:
    keys = _keys(account, client)
    window = settings.LOGIN_LOCKOUT_SECONDS
    cache = throttle_cache()
    until = time.time() + window
    if count_up(cache, keys["pair_failures"], timeout=window) >= settings.LOGIN_LOCKOUT_FAILURES:
        metrics.lockout(event="locked")
        cache.set(keys["pair_locked"], until, timeout=window)
        cache.delete(keys["pair_failures"])
    if (
        count_up(cache, keys["account_failures"], timeout=window)
        >= settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES
    ):
        metrics.lockout(event="locked")
        cache.set(keys["account_locked"], until, timeout=window)
        cache.delete(keys["account_failures"])


def failures_clear(*, account: str, client: str) -> None:
    """A success forgets this client's failures (not the account-wide count,
    which only time or an operator clears)."""
    throttle_cache().delete(_keys(account, client)["pair_failures"])


def account_state(*, account: str) -> tuple[float, int]:
    """(seconds the account stays locked for everyone, 0 when it is not;
    failures from all addresses counted in the current window), for
    operators. Locks of one address cannot be listed: their keys hold a hash
    of the address. ``unlock`` lifts them all."""
    keys = _keys(account, "")
    cache = throttle_cache()
    found = cache.get_many([keys["account_locked"], keys["account_failures"]])
    until = found.get(keys["account_locked"])
    remaining = max(float(until) - time.time(), 0.0) if until is not None else 0.0
    return remaining, int(found.get(keys["account_failures"], 0) or 0)


def unlock(*, account: str) -> None:
    """Lift every lock of ``account`` and forget its failures, from every address."""
    # Never expires: if it did, the account would fall back to an older
    # generation whose keys might still be alive.
    throttle_cache().set(f"lockout:v2:gen:{_digest(account)}", time.time_ns(), timeout=None)


def attempt(*, account: str, client: str, check: Callable[[], T]) -> T:
    """Run one credential check of ``account`` by ``client`` under the lockout:
    refused (``Throttled``) while locked; a falsy result counts as a failure, a
    truthy one forgets this client's failures. Returns the check's result."""
    lock_check(account=account, client=client)
    result = check()
    if result:
        failures_clear(account=account, client=client)
    else:
        failure_record(account=account, client=client)
    return result
