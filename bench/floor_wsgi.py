"""WSGI entry point of the REST floor, served as production serves REST
(``python -m arcana.wsgi_server bench.floor_wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor_settings")

application = get_wsgi_application()
