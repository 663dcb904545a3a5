"""Django settings for the floors: no apps, no middleware, no DRF, no auth.

The database entry is the service's own (``arcana.settings.base``), so the
floors use the same backend with the same persistent, health-checked
connections.
"""

import os

from arcana.settings.base import DATABASES  # noqa: F401  (re-exported as a setting)

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.floor_urls"
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING_CONFIG = None
