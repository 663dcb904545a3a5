"""Cache-aside point reads and their invalidation on every kind of write."""

import uuid

import pytest
from django.contrib.auth.hashers import make_password
from django.core.cache import cache

from arcana.core.context import call_context, read_ahead_announce
from tests.cache_spy import CountingCache, spy_on_repository_cache
from tests.factories import DEFAULT_PASSWORD, UserFactory
from users import repository
from users.errors import EmailTaken, LastAdmin, UserNotFound
from users.models import Role, Roles, User
from users.records import READ_AHEAD_USER, UserRecord
from users.signals import password_changed

pytestmark = pytest.mark.django_db

STRONG = "a long and unusual passphrase 42"


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
    changed = repository.users_update_many(
        user_ids=[str(user.pk), str(other_user.pk)], is_active=False
    )
    assert sorted(changed) == sorted([str(user.pk), str(other_user.pk)])
    assert not repository.user_get(user_id=str(user.pk)).is_active
    assert not repository.user_get(user_id=str(other_user.pk)).is_active


@pytest.mark.parametrize("bad", ["", "nope", "1234", "5f0c7a3e-9b1d-4c2e-8f6a-1d2b3c4d5e6f"])
def test_missing_or_malformed_ids_are_not_found(bad: str) -> None:
    with pytest.raises(UserNotFound):
        repository.user_get(user_id=bad)
    with pytest.raises(UserNotFound):
        repository.user_update_fields(user_id=bad, changes={"name": "X"})
    with pytest.raises(UserNotFound):
        repository.user_password_hash(user_id=bad)


def test_insert_conflict_becomes_domain_error(user: User) -> None:
    with pytest.raises(EmailTaken):
        repository.user_insert(
            name="X", email="URSULA@example.com", password_hash="x", roles=["user"]
        )


def test_update_conflict_becomes_domain_error(user: User, other_user: User) -> None:
    with pytest.raises(EmailTaken):
        repository.user_update_fields(
            user_id=str(other_user.pk), changes={"email": "ursula@example.com"}
        )
    other_user.refresh_from_db()
    assert other_user.email == "oscar@example.com"


def test_list_orders_by_creation_and_counts(user: User, other_user: User) -> None:
    page = repository.user_list(page=0, size=1, sync_status=None, search=None)
    assert page.total == 2
    assert [u.id for u in page.users] == [str(user.pk)]


def test_credentials_are_found_case_insensitively_and_never_shown(user: User) -> None:
    found = repository.user_credentials(email="URSULA@EXAMPLE.COM")
    assert found is not None
    assert found.user == repository.user_get(user_id=str(user.pk))
    assert found.password_hash == user.password
    assert user.password not in repr(found)
    assert repository.user_credentials(email="nobody@example.com") is None


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


# --- intent calls: each owns its transaction and locks ------------------------------


def test_the_last_active_admin_is_never_demoted_deactivated_or_deleted(admin_user: User) -> None:
    admin_id = str(admin_user.pk)
    UserFactory.create(admin=True, is_active=False)  # an inactive admin does not count
    with pytest.raises(LastAdmin):
        repository.user_update_fields(user_id=admin_id, changes={}, roles=["user"])
    with pytest.raises(LastAdmin):
        repository.user_update_fields(user_id=admin_id, changes={"is_active": False})
    with pytest.raises(LastAdmin):
        repository.user_delete(user_id=admin_id)
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert admin_user.role_names == ["admin", "user"]
    # Changes that keep them an active admin are not refused ...
    kept = repository.user_update_fields(
        user_id=admin_id, changes={"is_active": True, "name": "Still Ada"}, roles=["admin"]
    )
    assert (kept.name, kept.roles, kept.is_active) == ("Still Ada", ("admin",), True)
    # ... nor is anything once another active admin exists.
    UserFactory.create(admin=True)
    assert repository.user_update_fields(user_id=admin_id, changes={}, roles=["user"]).roles == (
        "user",
    )


def test_a_change_with_nothing_new_writes_nothing(user: User) -> None:
    before = repository.user_get(user_id=str(user.pk))
    after = repository.user_update_fields(
        user_id=str(user.pk), changes={"name": user.name, "email": user.email}
    )
    assert after == before
    with pytest.raises(ValueError, match="password"):
        repository.user_update_fields(
            user_id=str(user.pk),
            changes={"password": "x"},  # type: ignore[typeddict-unknown-key]
        )


def test_storing_a_password_hash_announces_the_change_once_it_commits(
    user: User, django_capture_on_commit_callbacks
) -> None:
    sent: list[dict[str, object]] = []

    def listen(sender: type, **kwargs: object) -> None:
        sent.append({"user_id": kwargs["user_id"], "keep_session": kwargs["keep_session"]})

    password_changed.connect(listen, dispatch_uid="test-hash-listener")
    try:
        repository.user_get(user_id=str(user.pk))
        with django_capture_on_commit_callbacks(execute=True):
            repository.user_set_password_hash(
                user_id=str(user.pk), password_hash=make_password(STRONG), keep_session="jti-1"
            )
            assert sent == []
            assert cached(user) == repository.TOMBSTONE
    finally:
        password_changed.disconnect(dispatch_uid="test-hash-listener")
    assert sent == [{"user_id": str(user.pk), "keep_session": "jti-1"}]
    user.refresh_from_db()
    assert user.check_password(STRONG)
    with pytest.raises(UserNotFound):
        repository.user_set_password_hash(user_id=str(uuid.uuid4()), password_hash="x")


def test_a_hash_upgrade_never_brings_back_a_changed_password(user: User) -> None:
    old_hash = user.password
    repository.user_set_password_hash(user_id=str(user.pk), password_hash=make_password(STRONG))
    # A login that checked the old password before the change now upgrades its hash.
    assert not repository.user_password_hash_upgrade(
        user_id=str(user.pk), old_hash=old_hash, new_hash=make_password(DEFAULT_PASSWORD)
    )
    user.refresh_from_db()
    assert user.check_password(STRONG)
    current = user.password
    assert repository.user_password_hash_upgrade(
        user_id=str(user.pk), old_hash=current, new_hash=make_password(STRONG)
    )
    user.refresh_from_db()
    assert user.password != current
    assert user.check_password(STRONG)


# --- read-ahead: one cache round trip for the caller and the target -----------------


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch, user: User, other_user: User) -> CountingCache:
    cache.clear()  # no tombstones of the users' creation
    return spy_on_repository_cache(monkeypatch)


def test_an_announced_read_comes_back_with_the_callers(
    django_assert_num_queries, counting: CountingCache, user: User, other_user: User
) -> None:
    repository.user_get(user_id=str(user.pk))
    repository.user_get(user_id=str(other_user.pk))  # both cached now
    counting.calls.clear()
    with call_context(request="r1"):
        read_ahead_announce(READ_AHEAD_USER, str(other_user.pk))
        with django_assert_num_queries(0):
            assert repository.user_get(user_id=str(user.pk)).email == user.email
            assert counting.calls == ["get_many"]
            assert repository.user_get(user_id=str(other_user.pk)).email == other_user.email
    assert counting.calls == ["get_many"]  # the target cost no second round trip


def test_what_was_read_ahead_serves_one_read_only(
    counting: CountingCache, user: User, other_user: User
) -> None:
    with call_context(request="r1"):
        read_ahead_announce(READ_AHEAD_USER, str(other_user.pk))
        repository.user_get(user_id=str(user.pk))
        repository.user_get(user_id=str(other_user.pk))  # a miss read ahead: the database
        assert isinstance(cached(other_user), UserRecord)  # and refilled, as a GET's miss is
        repository.user_get(user_id=str(other_user.pk))
    assert counting.calls == ["get_many", "add", "add", "get"]


def test_a_tombstone_read_ahead_still_sends_the_read_to_the_database(
    django_assert_num_queries, counting: CountingCache, user: User, other_user: User
) -> None:
    repository.user_get(user_id=str(user.pk))
    User.objects.filter(pk=other_user.pk).update(name="Renamed")
    repository.invalidate([str(other_user.pk)])
    with call_context(request="r1"):
        read_ahead_announce(READ_AHEAD_USER, str(other_user.pk))
        repository.user_get(user_id=str(user.pk))
        with django_assert_num_queries(2):  # the user and its roles
            assert repository.user_get(user_id=str(other_user.pk)).name == "Renamed"
    assert cached(other_user) == repository.TOMBSTONE  # not refilled


def test_a_write_in_the_call_forgets_what_was_read_ahead(
    counting: CountingCache, user: User, other_user: User
) -> None:
    repository.user_get(user_id=str(other_user.pk))
    with call_context(request="r1"):
        read_ahead_announce(READ_AHEAD_USER, str(other_user.pk))
        repository.user_get(user_id=str(user.pk))
        other_user.name = "Renamed"
        other_user.save()  # invalidates: the record read ahead is stale
        assert repository.user_get(user_id=str(other_user.pk)).name == "Renamed"


def test_a_caller_reading_themself_is_read_once(
    django_assert_num_queries, counting: CountingCache, user: User
) -> None:
    repository.user_get(user_id=str(user.pk))
    counting.calls.clear()
    with call_context(request="r1"), django_assert_num_queries(0):
        read_ahead_announce(READ_AHEAD_USER, str(user.pk))
        first = repository.user_get(user_id=str(user.pk))
        assert repository.user_get(user_id=str(user.pk)) == first
    assert counting.calls == ["get"]


def test_announcements_outside_a_call_or_of_malformed_ids_change_nothing(
    counting: CountingCache, user: User
) -> None:
    read_ahead_announce(READ_AHEAD_USER, str(user.pk))  # no call: nothing to keep it in
    repository.user_get(user_id=str(user.pk))
    with call_context(request="r1"):
        read_ahead_announce(READ_AHEAD_USER, "not-a-uuid")
        repository.user_get(user_id=str(user.pk))
    assert counting.calls == ["get", "add", "get"]
