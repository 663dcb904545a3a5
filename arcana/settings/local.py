"""Development settings: DEBUG on, SQLite and local-memory cache unless the
environment says otherwise.

Signing keys come from the environment; failing that, random keys are made
once per checkout and kept in ``.dev-keys.json`` (git-ignored), so no key is
ever committed and tokens survive the autoreloader's restarts.
"""

import json
import secrets

from arcana.modes import Mode
from arcana.observe.logs import formatter as structured_formatter

from .base import *  # noqa: F403
from .base import (
    ARCANA_DEPLOYMENT,
    BASE_DIR,
    JWT_KEYS,
    LOGGING,
    MIDDLEWARE,
    SIMPLE_JWT,
    env,
    log_format,
)

DEBUG = env.bool("DJANGO_DEBUG", default=True)


def _development_keys() -> dict[str, str]:
    path = BASE_DIR / ".dev-keys.json"
    try:
        keys: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        keys = {}
    if not {"DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"} <= keys.keys():
        keys = {
            name: secrets.token_urlsafe(48) for name in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY")
        }
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
    return keys


_keys = _development_keys()
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_keys["DJANGO_SECRET_KEY"])
if ARCANA_DEPLOYMENT.mode is not Mode.LAYERED:  # layered mode signs with a key pair only
    JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default=_keys["JWT_SIGNING_KEY"])
    if JWT_KEYS is None:  # HS256; else base set the key pair
        SIMPLE_JWT["SIGNING_KEY"] = JWT_SIGNING_KEY

# Mails go to the console unless EMAIL_URL says otherwise.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))

# Readable log lines at a terminal; LOG_FORMAT=json gives production's.
LOG_FORMAT = log_format("console")
LOGGING["formatters"]["structured"] = structured_formatter(LOG_FORMAT)

# runserver serves static files itself; no collectstatic needed in development.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
