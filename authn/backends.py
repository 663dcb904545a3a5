"""The Django admin's login, through the API's credential check.

``django.contrib.auth.authenticate()`` (the admin login form, ``Client.login``)
ends here, in :func:`authn.services.credentials_verify`: the email is
normalised (trimmed, case-insensitive) as the API does, and failures count
towards the same lockout, so twenty guesses at the admin page lock that
client out of the account on the API too, and the other way round.

The one place where authn touches users' models and repository: Django's
authentication backend contract is to return a user *model* (``login()``
stores its pk and password hash in the session, the admin reads its
permissions), which no record can stand in for. Everything else in authn
reaches users through ``users.services`` and gets records.
"""

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

import authn
from arcana.core.context import acting_user
from arcana.core.exceptions import Throttled
from arcana.core.reads import primary
from arcana.core.rest import client_of
from authn.errors import InvalidCredentials
from users import repository as users_repository
from users.models import User

# Set on the request when a lock refused the login, so the form can say why.
REFUSAL_ATTRIBUTE = "arcana_login_refusal"
UNKNOWN_CLIENT = "unknown"


class CredentialsBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        email = username if username is not None else kwargs.get(User.USERNAME_FIELD)
        if not isinstance(email, str) or not isinstance(password, str):
            return None
        client = client_of(request) if request is not None else UNKNOWN_CLIENT
        try:
            record = authn.service.credentials_verify(email=email, password=password, client=client)
        except Throttled as exc:
            if request is not None:
                setattr(request, REFUSAL_ATTRIBUTE, exc)
            # Stops authenticate() from trying any other backend.
            raise PermissionDenied(exc.message) from None
        except InvalidCredentials:
            return None
        # A model, as Django's backend contract demands (see the module docstring);
        # the credentials were checked by the service, on records, above.
        return users_repository.user_model_for_login(user_id=record.id)

    def get_user(self, user_id: Any) -> User | None:
        """The signed-in operator of a session, from the primary: a deactivation
        or a password change (which ends sessions) counts at once, even with
        read replicas (arcana/db/routers.py). They become the acting user, as
        token authentication makes the API's caller, so that their reads follow
        their own writes; the request's call_context ends it."""
        with primary():
            user = super().get_user(user_id)
        if user is not None:
            acting_user.set(str(user.pk))
        return user
