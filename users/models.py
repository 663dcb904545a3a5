"""The user model: email login, UUID keys, roles, sync status.

Email addresses are stored normalised (``users.normal.normalize_email``) and
the database itself enforces both uniqueness and the lower-case form, so two
registrations of one address in different cases or spellings
(``ann@EXAMPLE.com``, or with a fullwidth "e", U+FF45) can never both succeed,
whatever the path (API, admin, shell) and whatever the backend (SQLite, MySQL,
MariaDB). The normal form lives in ``users.normal`` (no database, importable
from anywhere); its names are re-exported here for the callers that always
found them here (serializers, admin, createsuperuser, migration 0004).
"""

import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.functions import Lower

from users import signals
from users.normal import DEFAULT_IGNORABLE_RANGES as DEFAULT_IGNORABLE_RANGES
from users.normal import INVALID_EMAIL_MESSAGE as INVALID_EMAIL_MESSAGE
from users.normal import INVISIBLE_CHARACTERS_MESSAGE as INVISIBLE_CHARACTERS_MESSAGE
from users.normal import has_default_ignorable as has_default_ignorable
from users.normal import normalize_email as normalize_email
from users.normal import validate_normalized_email as validate_normalized_email


class Roles(models.TextChoices):
    USER = "user", "User"
    ADMIN = "admin", "Admin"


class SyncStatus(models.TextChoices):
    SYNCED = "synced", "Synced"
    PENDING = "pending", "Pending"
    FAILED = "failed", "Failed"


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
        # An operator types the address at the console (createsuperuser): no
        # link to follow, and REQUIRE_EMAIL_VERIFICATION must not lock them out.
        extra.setdefault("email_verified", True)
        return self._create(email, name, password, [Roles.USER, Roles.ADMIN], **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=254, unique=True)
    roles = models.ManyToManyField(Role, blank=True, related_name="users")
    sync_status = models.CharField(
        max_length=16, choices=SyncStatus.choices, default=SyncStatus.SYNCED
    )
    is_active = models.BooleanField(default=True)
    # The owner has followed a verification link sent to ``email``.
    email_verified = models.BooleanField(
        "email verified",
        default=False,
        db_index=True,
        help_text="The owner has confirmed this address through the link mailed to it.",
    )
    # An address the owner asked to change to, waiting for its confirmation
    # (with REQUIRE_EMAIL_VERIFICATION). Not unique: whoever confirms first
    # takes the address, and ``email``'s own constraint decides that.
    pending_email = models.EmailField(
        max_length=254,
        blank=True,
        default="",
        help_text="A new address waiting for its owner to confirm it.",
    )
    is_staff = models.BooleanField(
        default=False, help_text="Can log in to this admin site (independent of API roles)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[UserManager] = UserManager()

    _password_disabled = False
    _password: str | None  # AbstractBaseUser's, missing from django-stubs

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["created_at", "id"]
        # The list's order, alone and after each equality filter, so a page by
        # keyset is one index range read in order (no sort, no scan) whatever
        # the filter; the (created_at) and (sync_status) indexes these replace
        # are their prefixes. is_active with sync_status uses the second and
        # skips the inactive rows (one in twenty) as it goes.
        indexes = [
            models.Index(fields=["created_at", "id"], name="users_list_created"),
            models.Index(fields=["sync_status", "created_at", "id"], name="users_list_sync"),
            models.Index(fields=["is_active", "created_at", "id"], name="users_list_active"),
        ]
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
            # Every session ends: the one path that keeps the caller's (the
            # API's) stores its hash through users.repository instead.
            user_id, self._password_disabled = str(self.pk), False
            # After the commit: a rolled-back change ends no session.
            transaction.on_commit(
                lambda: signals.password_changed.send(
                    sender=User, user_id=user_id, keep_session=None
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


def _through_text(relation: models.Model) -> str:
    """How the admin's delete confirmation names a row of the user's
    many-to-many tables: "role admin", not "User_roles object (3)"."""
    for field in relation._meta.concrete_fields:
        if field.is_relation and field.related_model is not User:
            target = getattr(relation, field.name)
            return f"{field.verbose_name} {target}"
    return f"{relation._meta.verbose_name} {relation.pk}"  # pragma: no cover - none such


# The auto-created through models (roles, groups, permissions) get that name;
# they have no class of their own to define __str__ in (and no migration needs one).
for _field in ("roles", "groups", "user_permissions"):
    User._meta.get_field(_field).remote_field.through.__str__ = _through_text  # type: ignore[union-attr]
