"""Production settings: DEBUG off, secure cookies and headers, and strong keys
required from the environment. Startup fails loudly when a key is missing or
weak, so a misconfigured deployment never serves traffic."""

import itertools
import math
from collections import Counter
from collections.abc import Hashable, Sequence

from django.core.exceptions import ImproperlyConfigured

from arcana.modes import Mode

from .base import *  # noqa: F403
from .base import (
    ARCANA_DEPLOYMENT,
    JWT_KEYS,
    REST_FRAMEWORK,
    SHARED_CACHE,
    SIMPLE_JWT,
    api_docs_mode,
    env,
)

MIN_KEY_BYTES = 32
# Estimated bits a key must carry (see key_entropy_bits). secrets.token_urlsafe(48)
# scores about 350, a random 32-character base64 key about 155 (never below 130
# in 100,000 draws), "abcdefgh" * 4 about 14, a 32-character English phrase
# about 125. HS256 wants 256 bits of key; 128 estimated is the floor.
MIN_KEY_ENTROPY_BITS = 128
# A key whose characters mostly equal the one a fixed distance back is a
# repeated block ("password" * 8), however varied the block.
MAX_KEY_REPEAT_FRACTION = 0.5
_WEAK_MARKERS = ("change-me", "changeme", "insecure", "development", "example", "secret-key")
_GENERATE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _shannon_bits(symbols: Sequence[Hashable]) -> float:
    """Shannon entropy of the symbols' frequencies, per symbol, times their count.

    With the Miller-Madow correction ((distinct - 1) / 2 bits in all): a short
    sample of a random source shows fewer distinct symbols than the source has,
    and the plain estimate would refuse some honest 32-character keys.
    """
    total = len(symbols)
    counts = Counter(symbols).values()
    plain = -sum(count * math.log2(count / total) for count in counts)
    return plain + (len(counts) - 1) / 2 if counts else 0.0


def key_entropy_bits(value: str) -> float:
    """A conservative estimate of the randomness in ``value``, in bits.

    The Shannon entropy of its characters, or of the steps between neighbouring
    characters if that is lower (a run such as "abcdefgh..." has varied
    characters but one step), times the length. Random keys score close to
    their true entropy; anything a person types scores far below it.
    """
    steps = [ord(after) - ord(before) for before, after in itertools.pairwise(value)]
    return min(_shannon_bits(value), _shannon_bits(steps))


def key_repeats(value: str) -> bool:
    """True if ``value`` is mostly one block repeated: for some period up to a
    quarter of its length, most characters equal the one that period back."""
    sample = value[:256]  # keys are short; bound the work for a pathological one
    for period in range(1, len(sample) // 4 + 1):
        pairs = len(sample) - period
        same = sum(sample[index] == sample[index + period] for index in range(pairs))
        if same > MAX_KEY_REPEAT_FRACTION * pairs:
            return True
    return False


def require_strong_key(name: str, value: str | None) -> str:
    """Return ``value`` if it is long, random-looking and not a placeholder,
    else refuse to start."""
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in production.")
    if len(value.encode()) < MIN_KEY_BYTES:
        raise ImproperlyConfigured(f"{name} must be at least {MIN_KEY_BYTES} bytes long.")
    lowered = value.lower()
    if any(marker in lowered for marker in _WEAK_MARKERS):
        raise ImproperlyConfigured(f"{name} looks like a placeholder; {_GENERATE}")
    if key_repeats(value):
        raise ImproperlyConfigured(f"{name} repeats itself; {_GENERATE}")
    bits = key_entropy_bits(value)
    if bits < MIN_KEY_ENTROPY_BITS:
        raise ImproperlyConfigured(
            f"{name} has too little entropy (about {bits:.0f} bits estimated, "
            f"at least {MIN_KEY_ENTROPY_BITS} needed); {_GENERATE}"
        )
    return value


DEBUG = False
SECRET_KEY = require_strong_key("DJANGO_SECRET_KEY", env.str("DJANGO_SECRET_KEY", default=None))
if ARCANA_DEPLOYMENT.internal_insecure:
    raise ImproperlyConfigured(
        "ARCANA_INTERNAL_INSECURE=true is for local runs only: production's internal calls "
        "use mutual TLS (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA)."
    )
if JWT_KEYS is None and ARCANA_DEPLOYMENT.mode is not Mode.MONOLITHIC:
    pass  # base refused what a tier or service must not hold; a repository tier needs no key
elif JWT_KEYS is None:
    JWT_SIGNING_KEY = require_strong_key(
        "JWT_SIGNING_KEY", env.str("JWT_SIGNING_KEY", default=None)
    )
    if JWT_SIGNING_KEY == SECRET_KEY:
        raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY.")
    SIMPLE_JWT["SIGNING_KEY"] = JWT_SIGNING_KEY
elif env.str("JWT_SIGNING_KEY", default=""):
    # Base already checked the pair (a public key that is not the private
    # key's half, a malformed or weak key); a leftover HS256 secret would be a
    # second way to mint tokens that nothing uses.
    raise ImproperlyConfigured(
        "JWT_SIGNING_KEY must not be set with JWT_PRIVATE_KEY or JWT_PUBLIC_KEY "
        "(tokens are signed with the private key)."
    )

# Throttles, lockouts and the user cache must be shared by every process and
# host; process memory would let each process count on its own. Without Redis,
# only an explicit single-host deployment (ARCANA_SINGLE_HOST=true: one machine,
# as benchmarks and a one-box install run) may start, on base's default: the
# counters in files under CACHE_DIR, which that host's processes share, and no
# user cache.
if not SHARED_CACHE and not env.bool("ARCANA_SINGLE_HOST", default=False):
    raise ImproperlyConfigured(
        "REDIS_URL (or REDIS_SENTINELS) must be set in production (throttles, lockouts "
        "and the user cache are shared through Redis); ARCANA_SINGLE_HOST=true runs one "
        "host without it."
    )

# X-Forwarded-Proto is believed only behind a declared proxy (NUM_PROXIES >= 1),
# which sets it itself; without one any client could send it and pass for HTTPS.
if REST_FRAMEWORK["NUM_PROXIES"] >= 1:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# The schema and Swagger UI map every endpoint: only for admins unless chosen.
API_DOCS = api_docs_mode("admin")
