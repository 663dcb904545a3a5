"""Production settings: DEBUG off, secure cookies and headers, and strong keys
required from the environment. Startup fails loudly when a key is missing or
weak, so a misconfigured deployment never serves traffic."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import REDIS_URL, SIMPLE_JWT, env

MIN_KEY_BYTES = 32
_WEAK_MARKERS = ("change-me", "changeme", "insecure", "development", "example", "secret-key")


def require_strong_key(name: str, value: str | None) -> str:
    """Return ``value`` if it is long and not a placeholder, else refuse to start."""
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in production.")
    if len(value.encode()) < MIN_KEY_BYTES:
        raise ImproperlyConfigured(f"{name} must be at least {MIN_KEY_BYTES} bytes long.")
    lowered = value.lower()
    if any(marker in lowered for marker in _WEAK_MARKERS) or len(set(value)) < 8:
        raise ImproperlyConfigured(f"{name} looks like a placeholder; generate a random one.")
    return value


DEBUG = False
SECRET_KEY = require_strong_key("DJANGO_SECRET_KEY", env.str("DJANGO_SECRET_KEY", default=None))
JWT_SIGNING_KEY = require_strong_key("JWT_SIGNING_KEY", env.str("JWT_SIGNING_KEY", default=None))
if JWT_SIGNING_KEY == SECRET_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY.")
SIMPLE_JWT["SIGNING_KEY"] = JWT_SIGNING_KEY

# Throttles, lockouts and the user cache must be shared by every process and
# host; files or process memory would let each process count on its own.
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL must be set in production (throttles, lockouts and the user cache "
        "are shared through Redis)."
    )

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
