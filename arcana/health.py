"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can serve).

Readiness needs what the process depends on (:func:`dependency_ready`): the
database in monolithic mode and in the repository tier; in layered mode's
controller and service tiers, the tier below (its gRPC health: SERVING on at
least one of its addresses), since they hold no database. A microservice
needs its own database; the other service (its internal gRPC health) shows as
"degraded" when it does not answer, without taking this one out of rotation:
the users service serves token holders while auth is down, and the auth
service's own readiness says nothing about users. The cache only
speeds things up and fails open (arcana/core/cache.py), so an unreachable
cache shows as "degraded" but does not take the instance out of rotation.

The same dependency checks drive the gRPC health service (arcana/grpc/server.py).
A failing dependency is logged when it starts failing and when it recovers,
not on every probe.
"""

import logging
import threading
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger("arcana.health")

_state_lock = threading.Lock()
_last_state: dict[str, bool] = {}


def _record(name: str, ok: bool, error: BaseException | None = None) -> bool:
    with _state_lock:
        previous = _last_state.get(name, True)
        _last_state[name] = ok
    if previous and not ok:
        logger.warning("readiness: %s unavailable (%s)", name, error.__class__.__name__)
    elif ok and not previous:
        logger.warning("readiness: %s available again", name)
    return ok


def database_ready() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"
        return _record("database", False, exc)
    return _record("database", True)


# The tier a layered-mode tier depends on: the one it calls.
_NEXT_TIER = {"controller": "service", "service": "repository"}


def dependency_ready() -> tuple[str, bool]:
    """(what this process depends on, whether it is reachable now)."""
    tier = getattr(settings.ARCANA_DEPLOYMENT, "tier", None)
    below = _NEXT_TIER.get(str(tier)) if tier is not None else None
    if below is None:
        return "database", database_ready()
    from arcana.core.internal import tier_serving  # grpc: only in layered tiers

    try:
        ok = tier_serving(below)
    except Exception as exc:
        return below, _record(below, False, exc)
    return below, _record(below, ok, None if ok else ConnectionError(f"{below} tier not serving"))


def cache_ready() -> bool:
    key = f"readyz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=5)
        ok = bool(cache.get(key) == "1")
        cache.delete(key)
    except Exception as exc:
        return _record("cache", False, exc)
    return _record("cache", ok, None if ok else ConnectionError("cache did not keep a value"))


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def peer_ready() -> tuple[str, bool] | None:
    """(the other microservice, whether its internal server is SERVING), or
    None outside microservices mode."""
    deployment = settings.ARCANA_DEPLOYMENT
    if getattr(deployment, "service", None) is None:
        return None
    from arcana.core.internal import peer_serving  # grpc: only where a hop is
    from arcana.modes import APP_OF_SERVICE

    peer, app = next((str(s), a) for s, a in APP_OF_SERVICE.items() if s != deployment.service)
    name = f"{peer} service"
    try:
        ok = peer_serving(app)
    except Exception as exc:
        return name, _record(name, False, exc)
    return name, _record(name, ok, None if ok else ConnectionError(f"{name} not serving"))


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    name, ready = dependency_ready()
    checks = {
        name: "ok" if ready else "unavailable",
        "cache": "ok" if cache_ready() else "degraded",
    }
    peer = peer_ready()
    if peer is not None:
        checks[peer[0]] = "ok" if peer[1] else "degraded"
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)
