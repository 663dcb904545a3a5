"""Normal forms of what names a user: the email address and the id.

Pure functions, no database and no model: every tier and other apps (authn
computes the lockout key of an address with :func:`normalize_email`) may
import this module without reaching into ``users.models``.

Email addresses are stored normalised (:func:`normalize_email`: trimmed, NFKC,
lower-cased, the domain in its IDNA ASCII form). Addresses with invisible
characters are refused outright (:func:`validate_normalized_email`): IDNA
would silently drop a zero-width space from a domain, and in the local part
it would make a second account that looks exactly like the first.
"""

import re
import unicodedata
import uuid

import idna
from django.core.exceptions import ValidationError

from users.errors import UserNotFound

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt;
# the same ranges in Unicode 14, 15 and 16): code points that render as nothing
# and so make two addresses that look identical. The standard library has no
# table of this property, so the ranges are listed here, once.
DEFAULT_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # SOFT HYPHEN
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x115F, 0x1160),  # HANGUL CHOSEONG FILLER, HANGUL JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ, AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    (0x200B, 0x200F),  # ZERO WIDTH SPACE, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # WORD JOINER, invisible operators, bidi isolates, reserved
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..16
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT controls
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN BEAM..END PHRASE
    (0xE0000, 0xE0FFF),  # tags, VARIATION SELECTOR-17..256, reserved
)
_DEFAULT_IGNORABLE = re.compile(
    "[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in DEFAULT_IGNORABLE_RANGES) + "]"
)

INVISIBLE_CHARACTERS_MESSAGE = (
    "Enter a valid email address: it contains invisible characters "
    "(such as a zero-width space or a soft hyphen)."
)
INVALID_EMAIL_MESSAGE = "Enter a valid email address."


def has_default_ignorable(text: str) -> bool:
    return _DEFAULT_IGNORABLE.search(text) is not None


def _is_domain_literal(domain: str) -> bool:
    return domain.startswith("[") and domain.endswith("]")


def _idna_domain(domain: str) -> str | None:
    """``domain`` as IDNA 2008 (UTS #46) A-labels, or None when it has none."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def normalize_email(email: str) -> str:
    """The one normal form of an address: trimmed, NFKC, lower-cased, and the
    domain in its IDNA ASCII form (``bücher.de`` -> ``xn--bcher-kva.de``).

    Never raises, so lookups (login) can use it on any input: whatever cannot
    be normalised is kept as it is, matches no stored address, and is refused
    by :func:`validate_normalized_email` wherever an address is accepted. A
    domain with invisible characters is kept too, not handed to IDNA, which
    would drop them silently.
    """
    if email.isascii():  # the usual case: NFKC and IDNA change nothing in ASCII
        return email.strip().lower()
    normal = unicodedata.normalize("NFKC", email).strip().lower()
    # Lower-casing can leave a string that is not NFKC ("İ" -> "i" + U+0307).
    normal = unicodedata.normalize("NFKC", normal)
    local, at, domain = normal.rpartition("@")
    if not at or domain.isascii() or has_default_ignorable(domain):
        return normal
    return f"{local}@{_idna_domain(domain) or domain}"


def validate_normalized_email(email: str) -> None:
    """Refuse what :func:`normalize_email` could not make safe to store: invisible
    characters anywhere, a domain that has no IDNA form (``xn--zz.com``). Run
    on the normalised address, beside Django's ``EmailValidator``."""
    if has_default_ignorable(email):
        raise ValidationError(INVISIBLE_CHARACTERS_MESSAGE, code="invisible_characters")
    _, at, domain = email.rpartition("@")
    if not at or _is_domain_literal(domain):
        return  # EmailValidator judges these
    if domain.isascii() and not any(label.startswith("xn--") for label in domain.split(".")):
        return  # plain LDH labels: EmailValidator judges them
    # Still Unicode after normalising (IDNA refused it), or A-labels that must
    # decode: only a domain that is its own IDNA form is one.
    if _idna_domain(domain) != domain:
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid")


def parse_user_id(user_id: str) -> uuid.UUID:
    """A malformed id names no user: it is a miss (``UserNotFound``), not a
    validation error, so ids cannot be told apart by the error they get."""
    try:
        return uuid.UUID(str(user_id))
    except (ValueError, AttributeError, TypeError):
        raise UserNotFound() from None
