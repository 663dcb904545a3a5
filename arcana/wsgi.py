"""WSGI entry point, served by arcana.wsgi_server (production settings unless told otherwise)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcana.settings.production")

application = get_wsgi_application()

from arcana.core import delegation  # noqa: E402 - the apps load first

delegation.connect()  # layered and microservices modes: the peers' clients, checked now
