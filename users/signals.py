"""Signals of the users app, and its receivers of Django's model signals.

Other apps connect to ``password_changed``; users imports none of those apps.
The cache-invalidation receivers are connected by ``UsersConfig.ready``
(:func:`connect_receivers`); this module imports neither the models nor the
repository at import time, because ``users.models`` imports it.
"""

from typing import TYPE_CHECKING, Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal

if TYPE_CHECKING:
    from users.models import Role, User

# Sent once a new password of an existing user has committed, whichever path
# set it: ``User.save`` for the admin's forms, ``manage.py changepassword``
# and the shell, ``users.repository.user_set_password_hash`` for the API's
# change: one signal, so no path can forget to end the user's sessions.
# Arguments: ``user_id`` (str) and ``keep_session`` (the refresh-token jti of
# the caller's own session, which survives, or None).
password_changed = Signal()


def _invalidate(user_ids: list[str]) -> None:
    from users import repository  # users.models imports this module

    repository.invalidate(user_ids)


def user_changed(sender: type, instance: "User", **kwargs: Any) -> None:
    """Any save or delete of a user (the admin, the shell, the repository)
    drops its cached record."""
    _invalidate([str(instance.pk)])


def roles_changed(
    sender: type, instance: "User | Role", action: str, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    if not action.startswith("post_"):
        return
    from users.models import User

    if isinstance(instance, User):
        _invalidate([str(instance.pk)])
    elif pk_set:  # changed from the role's side: every user named
        _invalidate([str(pk) for pk in pk_set])


def connect_receivers() -> None:
    """Called once, from ``UsersConfig.ready``."""
    from users.models import User

    post_save.connect(user_changed, sender=User, dispatch_uid="users.signals.saved")
    post_delete.connect(user_changed, sender=User, dispatch_uid="users.signals.deleted")
    roles = User.roles.through
    m2m_changed.connect(roles_changed, sender=roles, dispatch_uid="users.signals.roles")
