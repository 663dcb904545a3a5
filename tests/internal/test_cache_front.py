"""Layered tiers read user records from the shared cache before they call
(arcana.core.delegation.front, users.repository.user_cached); microservices
never read each other's cache."""

from typing import Any

import pytest
from django.core.cache import cache

import users
from arcana.core.exceptions import Unavailable
from arcana.core.internal import RemoteBoundary
from arcana.modes import Deployment, Mode, Service
from tests.internal.conftest import deploy_as
from users import repository
from users.models import User
from users.records import UserRecord

pytestmark = pytest.mark.django_db

NOWHERE = ("127.0.0.1:1",)  # nothing listens: a call that crosses fails at once


def test_user_cached_reads_the_cache_alone(user: User, settings: Any) -> None:
    key = repository.CACHE_KEY.format(user.id)
    cache.delete(key)
    assert repository.user_cached(user_id=str(user.id)) is None  # a miss: no database read
    record = repository.user_get(user_id=str(user.id))  # fills it
    assert repository.user_cached(user_id=str(user.id)) == record
    repository.invalidate([str(user.id)])
    assert repository.user_cached(user_id=str(user.id)) is None  # a tombstone
    assert repository.user_cached(user_id="not-a-uuid") is None
    settings.USER_CACHE = False
    cache.delete(key)
    repository.user_get(user_id=str(user.id))
    assert repository.user_cached(user_id=str(user.id)) is None


def _remote(name: str) -> Any:
    boundaries = users._boundaries
    remote = boundaries._remote_implementation(name)
    assert isinstance(remote, RemoteBoundary)
    return remote


@pytest.mark.parametrize(
    ("tier", "boundary", "method", "arguments"),
    [
        ("controller", "service", "user_record", {}),
        ("service", "repo", "user_get", {}),
    ],
)
def test_a_layered_tier_answers_cached_records_without_a_hop(
    user: User, settings: Any, tier: str, boundary: str, method: str, arguments: dict[str, Any]
) -> None:
    deploy_as(settings, tier, service_targets=NOWHERE, repository_targets=NOWHERE)
    cache.delete(repository.CACHE_KEY.format(user.id))
    remote = _remote(boundary)
    try:
        with pytest.raises(Unavailable):  # a miss crosses (and finds nothing there)
            getattr(remote, method)(user_id=str(user.id))
        record = repository.user_get(user_id=str(user.id))
        found = getattr(remote, method)(user_id=str(user.id))  # a hit does not
        assert isinstance(found, UserRecord)
        assert found == record
    finally:
        remote.close()


def test_a_microservice_never_reads_the_other_ones_cache(user: User, settings: Any) -> None:
    settings.ARCANA_DEPLOYMENT = Deployment(
        mode=Mode.MICROSERVICES, service=Service.AUTH, users_targets=NOWHERE, internal_insecure=True
    )
    settings.ARCANA_INTERNAL_TLS_CERT = ""
    cache.delete(repository.CACHE_KEY.format(user.id))  # the creation's tombstone
    repository.user_get(user_id=str(user.id))  # cached, as the users service would
    assert repository.user_cached(user_id=str(user.id)) is not None
    remote = _remote("service")
    try:
        with pytest.raises(Unavailable):  # always asks the users service
            remote.user_record(user_id=str(user.id))
    finally:
        remote.close()
