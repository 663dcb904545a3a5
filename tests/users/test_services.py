"""Service rules on a real database: access, admin-only fields, policy."""

import pytest

from arcana.core.exceptions import Forbidden, InvalidInput
from tests.factories import UserFactory
from users import services
from users.errors import EmailTaken, UserNotFound
from users.models import User
from users.records import Actor

pytestmark = pytest.mark.django_db

STRONG = "a long and unusual passphrase 42"


def actor(user: User) -> Actor:
    return Actor(id=str(user.pk), roles=tuple(user.role_names))


def test_user_create_returns_a_frozen_record() -> None:
    record = services.user_create(name="Rec", email="Rec@Example.com", password=STRONG)
    assert record.email == "rec@example.com"
    assert record.roles == ("user",)
    with pytest.raises(AttributeError):
        record.name = "changed"  # type: ignore[misc]


def test_user_create_rejects_unknown_roles_and_statuses() -> None:
    with pytest.raises(InvalidInput) as roles:
        services.user_create(name="R", email="r@example.com", password=STRONG, roles=["god"])
    assert "roles" in roles.value.errors
    with pytest.raises(InvalidInput) as status:
        services.user_create(name="R", email="r@example.com", password=STRONG, sync_status="x")
    assert "sync_status" in status.value.errors
    assert not User.objects.exists()


def test_user_create_applies_password_similarity() -> None:
    with pytest.raises(InvalidInput) as exc:
        services.user_create(
            name="Quentin Tarantula", email="q@example.com", password="quentintarantula"
        )
    assert "password" in exc.value.errors


def test_user_create_duplicate() -> None:
    services.user_create(name="A", email="a@example.com", password=STRONG)
    with pytest.raises(EmailTaken):
        services.user_create(name="B", email="A@EXAMPLE.COM", password=STRONG)


def test_user_get_rules(user: User, other_user: User, admin_user: User) -> None:
    assert services.user_get(actor=actor(user), user_id=str(user.pk)).id == str(user.pk)
    assert services.user_get(actor=actor(admin_user), user_id=str(user.pk)).id == str(user.pk)
    with pytest.raises(UserNotFound):
        services.user_get(actor=actor(user), user_id=str(other_user.pk))


def test_user_list_needs_admin_and_valid_paging(user: User, admin_user: User) -> None:
    with pytest.raises(Forbidden):
        services.user_list(actor=actor(user))
    with pytest.raises(InvalidInput) as exc:
        services.user_list(actor=actor(admin_user), page=-1, size=0)
    assert set(exc.value.errors) == {"page", "size"}
    with pytest.raises(InvalidInput):
        services.user_list(actor=actor(admin_user), sync_status="bogus")
    assert services.user_list(actor=actor(admin_user), search="").total == 2


def test_user_update_admin_only_fields(user: User, admin_user: User) -> None:
    with pytest.raises(Forbidden):
        services.user_update(
            actor=actor(user), user_id=str(user.pk), client="test", roles=["admin"]
        )
    record = services.user_update(
        actor=actor(admin_user),
        user_id=str(user.pk),
        client="test",
        roles=["admin"],
        sync_status="failed",
    )
    assert record.roles == ("admin",)
    assert record.sync_status == "failed"


def test_user_update_with_nothing_to_change_is_a_read(user: User) -> None:
    before = services.user_get(actor=actor(user), user_id=str(user.pk))
    after = services.user_update(
        actor=actor(user), user_id=str(user.pk), client="test", name=user.name
    )
    assert after == before


def test_user_delete_needs_admin(user: User, admin_user: User) -> None:
    with pytest.raises(Forbidden):
        services.user_delete(actor=actor(user), user_id=str(user.pk))
    services.user_delete(actor=actor(admin_user), user_id=str(user.pk))
    assert not User.objects.filter(pk=user.pk).exists()


def test_user_set_password_applies_policy(user: User) -> None:
    with pytest.raises(InvalidInput):
        services.user_set_password(user_id=str(user.pk), password="123")
    services.user_set_password(user_id=str(user.pk), password=STRONG)
    user.refresh_from_db()
    assert user.check_password(STRONG)


def test_bulk_actions(user: User, other_user: User) -> None:
    ids = [str(user.pk), str(other_user.pk)]
    assert sorted(services.users_mark_pending_sync(user_ids=ids)) == sorted(ids)
    assert services.users_deactivate(user_ids=ids[:1]) == ids[:1]
    # Again: nothing left to change, so nothing is counted.
    assert services.users_mark_pending_sync(user_ids=ids) == []
    assert services.users_deactivate(user_ids=ids) == [str(other_user.pk)]
    user.refresh_from_db()
    other_user.refresh_from_db()
    assert (user.sync_status, user.is_active) == ("pending", False)
    assert (other_user.sync_status, other_user.is_active) == ("pending", False)


def test_factory_makes_distinct_users() -> None:
    assert UserFactory.create().email != UserFactory.create().email
