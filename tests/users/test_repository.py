"""Cache-aside point reads and their invalidation on every kind of write."""

import uuid

import pytest
from django.core.cache import cache

from tests.factories import UserFactory
from users import repository
from users.errors import EmailTaken, UserNotFound
from users.models import Role, Roles, User
from users.records import UserRecord

pytestmark = pytest.mark.django_db


def cached(user: User) -> object:
    return cache.get(repository.CACHE_KEY.format(user.pk))


def test_point_read_fills_the_cache_and_then_skips_the_database(
    django_assert_num_queries, user: User
) -> None:
    cache.clear()
    with django_assert_num_queries(2):  # the user and its roles
        first = repository.user_get(user_id=str(user.pk))
    assert isinstance(cached(user), UserRecord)
    with django_assert_num_queries(0):
        assert repository.user_get(user_id=str(user.pk)) == first


def test_model_save_invalidates(user: User) -> None:
    repository.user_get(user_id=str(user.pk))
    user.name = "Renamed"
    user.save()
    assert cached(user) == repository.TOMBSTONE
    assert repository.user_get(user_id=str(user.pk)).name == "Renamed"


def test_tombstone_is_not_overwritten_by_a_reader(user: User) -> None:
    repository.invalidate([str(user.pk)])
    repository.user_get(user_id=str(user.pk))
    assert cached(user) == repository.TOMBSTONE


def test_role_change_invalidates_from_either_side(user: User) -> None:
    assert repository.user_get(user_id=str(user.pk)).roles == ("user",)
    user.roles.add(Role.objects.get(name=Roles.ADMIN))
    assert repository.user_get(user_id=str(user.pk)).roles == ("admin", "user")
    cache.clear()
    repository.user_get(user_id=str(user.pk))
    Role.objects.get(name=Roles.ADMIN).users.remove(user)
    assert repository.user_get(user_id=str(user.pk)).roles == ("user",)


def test_delete_invalidates(user: User) -> None:
    repository.user_get(user_id=str(user.pk))
    repository.user_delete(user_id=str(user.pk))
    with pytest.raises(UserNotFound):
        repository.user_get(user_id=str(user.pk))
    with pytest.raises(UserNotFound):
        repository.user_delete(user_id=str(user.pk))


def test_bulk_update_invalidates(user: User, other_user: User) -> None:
    for u in (user, other_user):
        repository.user_get(user_id=str(u.pk))
    count = repository.users_update_many(
        user_ids=[str(user.pk), str(other_user.pk)], is_active=False
    )
    assert count == 2
    assert not repository.user_get(user_id=str(user.pk)).is_active
    assert not repository.user_get(user_id=str(other_user.pk)).is_active


@pytest.mark.parametrize("bad", ["", "nope", "1234", str(uuid.uuid4())])
def test_missing_or_malformed_ids_are_not_found(bad: str) -> None:
    with pytest.raises(UserNotFound):
        repository.user_get(user_id=bad)
    with pytest.raises(UserNotFound):
        repository.user_get_model(user_id=bad)


def test_insert_conflict_becomes_domain_error(user: User) -> None:
    with pytest.raises(EmailTaken):
        repository.user_insert(name="X", email="URSULA@example.com", password="x", roles=["user"])


def test_save_conflict_becomes_domain_error(user: User, other_user: User) -> None:
    other_user.email = "ursula@example.com"
    with pytest.raises(EmailTaken):
        repository.user_save(user=other_user, fields=["email"])


def test_list_orders_by_creation_and_counts(user: User, other_user: User) -> None:
    page = repository.user_list(page=0, size=1, sync_status=None, search=None)
    assert page.total == 2
    assert [u.id for u in page.users] == [str(user.pk)]


def test_find_by_email_is_case_insensitive(user: User) -> None:
    found = repository.user_find_by_email(email="URSULA@EXAMPLE.COM")
    assert found is not None
    assert found.pk == user.pk
    assert repository.user_find_by_email(email="nobody@example.com") is None


def test_factory_admin_trait() -> None:
    assert UserFactory.create(admin=True).role_names == ["admin", "user"]


def test_without_a_shared_cache_every_read_goes_to_the_database(
    django_assert_num_queries, user: User, settings
) -> None:
    settings.USER_CACHE = False
    cache.clear()
    for _ in range(2):
        with django_assert_num_queries(2):
            assert repository.user_get(user_id=str(user.pk)).id == str(user.pk)
    user.name = "Renamed"
    user.save()  # writes leave no tombstone either: nothing is cached
    assert cached(user) is None
