"""authn's answers to other apps' signals (connected in AuthnConfig.ready)."""

from typing import Any

from django.dispatch import receiver

import authn
from users.signals import password_changed


@receiver(password_changed, dispatch_uid="authn.receivers.password_changed")
def end_sessions_after_password_change(
    sender: type, *, user_id: str, keep_session: str | None = None, **kwargs: Any
) -> None:
    """A new password ends every other session of the user, whichever path set it."""
    authn.service.user_sessions_end(user_id=user_id, keep_session=keep_session)
