"""Each microservice's database holds its own app's tables only.

In microservices mode (``ARCANA_MODE=microservices``) the users service's
``DATABASE_URL`` holds users' tables and what the admin needs (Django's auth,
contenttypes, sessions, the admin log); the auth service's holds authn's
refresh tokens only. :class:`ServiceDataRouter`, installed by the settings in
that mode only:

- migrates only the service's own apps on its database (the other apps'
  migrations are recorded as applied but create nothing; Django's
  ``post_migrate`` content types and permissions are skipped with them);
- refuses any ORM use of another service's models with
  :class:`ForeignDataUse`, naming the model and the boundary to use instead,
  so hidden cross-service reads fail loudly at the call, not with "no such
  table" from a database that happens to lack it.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model

from arcana.modes import APP_OF_SERVICE, SERVICE_OF_APP, Service


def service_of(app_label: str) -> str:
    """The microservice whose database holds app ``app_label``'s tables: the
    one owning the app (``arcana.modes.APP_OF_SERVICE``); every other installed
    app with models (Django's auth, contenttypes, sessions, the admin log)
    belongs to the users service, where the admin runs."""
    return str(SERVICE_OF_APP.get(app_label, Service.USERS))


class ForeignDataUse(ImproperlyConfigured):
    """Code in one microservice used another one's models."""


def _deployed_service() -> str:
    return str(settings.ARCANA_DEPLOYMENT.service)


class ServiceDataRouter:
    """Refuses the other service's models and migrates the own apps only.

    ``here`` names the service whose code is running: by default this
    process's (``settings.ARCANA_DEPLOYMENT.service``). Where both services run
    in one process (the test suites' microservices mode, ``tests/layered.py``)
    it is the service of the running call instead, and None, outside any
    service's code, refuses nothing."""

    def __init__(self, here: Callable[[], str | None] = _deployed_service) -> None:
        self._here = here

    def check(self, model: type[Model]) -> None:
        """Raise :class:`ForeignDataUse` unless ``model``'s data is here."""
        here = self._here()
        owner = service_of(model._meta.app_label)
        if here is not None and owner != here:
            app = APP_OF_SERVICE[Service(owner)]
            raise ForeignDataUse(
                f"{model._meta.label} is the {owner} service's data, which the {here} "
                f"service reaches only through {app}.service"
            )

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        self.check(model)
        return None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        self.check(model)
        return None

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        here = self._here()
        if here is not None and service_of(app_label) != here:
            return False
        return None
