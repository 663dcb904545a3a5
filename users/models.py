"""The user model: email login, UUID keys, roles, sync status.

Email addresses are stored normalised (:func:`normalize_email`: trimmed, NFKC,
lower-cased, the domain in its IDNA ASCII form) and the database itself
enforces both uniqueness and the lower-case form, so two registrations of one
address in different cases or spellings (``ann@EXAMPLE.com``, or with a
fullwidth "e", U+FF45) can never both succeed, whatever the path
(API, admin, shell) and whatever the backend (SQLite, MySQL, MariaDB).
Addresses with invisible characters are refused outright
(:func:`validate_normalized_email`): IDNA would silently drop a zero-width
space from a domain, and in the local part it would make a second account
that looks exactly like the first.
"""

import re
import unicodedata
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

import idna
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.functions import Lower

from users import signals


class Roles(models.TextChoices):
    USER = "user", "User"
    ADMIN = "admin", "Admin"


class SyncStatus(models.TextChoices):
    SYNCED = "synced", "Synced"
    PENDING = "pending", "Pending"
    FAILED = "failed", "Failed"


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


class Role(models.Model):
    """A role a user can hold; the rows are seeded by a migration."""

    name = models.CharField(primary_key=True, max_length=32, choices=Roles.choices)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserQuerySet(models.QuerySet["User"]):
    def with_roles(self) -> "UserQuerySet":
        return self.prefetch_related("roles")

    def active(self) -> "UserQuerySet":
        return self.filter(is_active=True)

    def by_email(self, email: str) -> "UserQuerySet":
        return self.filter(email=normalize_email(email))

    def with_sync_status(self, status: str | None) -> "UserQuerySet":
        return self.filter(sync_status=status) if status else self

    def search(self, term: str | None) -> "UserQuerySet":
        if not term:
            return self
        # Emails are stored lower-case and, on MySQL, compared byte for byte
        # (see migration 0003), so match the lower-cased term exactly.
        return self.filter(models.Q(name__icontains=term) | models.Q(email__contains=term.lower()))


class UserManager(BaseUserManager["User"]):
    """Keeps Django's ``create_user``/``create_superuser`` so ``createsuperuser`` works."""

    use_in_migrations = True

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)

    def get_by_natural_key(self, username: str | None) -> "User":
        # Django's own lookups (the admin's login, createsuperuser's "already
        # taken" check) find an address in any case or spelling, as the API does.
        return self.get(email=normalize_email(username or ""))

    def _create(
        self, email: str, name: str, password: str | None, roles: list[str], **extra: Any
    ) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        email = normalize_email(email)
        try:
            validate_normalized_email(email)
        except ValidationError as exc:
            raise ValueError(exc.messages[0]) from None
        user = self.model(email=email, name=name, **extra)
        user.set_password(password)
        # One unit: a failed insert (a taken address) leaves the caller's
        # transaction usable, and no user is ever left without its roles.
        with transaction.atomic(using=self._db):
            user.save(using=self._db)
            user.roles.set(Role.objects.filter(name__in=roles))
        return user

    def create_user(
        self, email: str, name: str = "", password: str | None = None, **extra: Any
    ) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, name, password, [Roles.USER], **extra)

    def create_superuser(
        self, email: str, name: str = "", password: str | None = None, **extra: Any
    ) -> "User":
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, name, password, [Roles.USER, Roles.ADMIN], **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=254, unique=True)
    roles = models.ManyToManyField(Role, blank=True, related_name="users")
    sync_status = models.CharField(
        max_length=16, choices=SyncStatus.choices, default=SyncStatus.SYNCED, db_index=True
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(
        default=False, help_text="Can log in to this admin site (independent of API roles)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[UserManager] = UserManager()

    # Not a field. The one caller whose own session survives its password
    # change (the API's, through users.repository.user_password_save) names
    # that session's refresh-token jti here before saving.
    keep_session: str | None = None
    _password_disabled = False
    _password: str | None  # AbstractBaseUser's, missing from django-stubs

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")), name="users_user_email_lowercase"
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        update_fields = kwargs.get("update_fields")
        if (update_fields is None or "email" in update_fields) and has_default_ignorable(
            self.email
        ):
            # Every entry point validates first; this guards the ones that forget.
            raise ValueError(INVISIBLE_CHARACTERS_MESSAGE)
        password_changed = self._saves_a_new_password(update_fields)
        super().save(*args, **kwargs)
        if password_changed:
            user_id, keep_session = str(self.pk), self.keep_session
            self.keep_session, self._password_disabled = None, False
            # After the commit: a rolled-back change ends no session.
            transaction.on_commit(
                lambda: signals.password_changed.send(
                    sender=User, user_id=user_id, keep_session=keep_session
                ),
                using=self._state.db,
            )

    def set_unusable_password(self) -> None:
        # The admin's "disable password-based authentication": no raw password
        # for ``_password`` to hold, but a password change all the same.
        super().set_unusable_password()
        self._password_disabled = True

    def _saves_a_new_password(self, update_fields: Iterable[str] | None) -> bool:
        """``set_password`` keeps the raw password in ``_password`` until the next
        save (Django's own ``password_changed`` hook works the same way); a hash
        upgrade at login clears it first, so it is no change. A new user has no
        session to end."""
        if (self._password is None and not self._password_disabled) or self._state.adding:
            return False
        return update_fields is None or "password" in update_fields

    @property
    def role_names(self) -> list[str]:
        return sorted(role.name for role in self.roles.all())
