"""``createsuperuser`` with the API's rules for the email and the password.

Django's own command, in ``--noinput`` mode, stores whatever
``DJANGO_SUPERUSER_PASSWORD`` holds without running the password validators,
and in both modes checks "already taken" against the email as typed, so a
case variant of an existing address got past it and died in the database
with an IntegrityError traceback. Here the email is normalised and checked
the way the API checks it (``users.models``), the password must pass the
API's policy (``users.services.password_check``), and a clash is a clean
error. ``users`` is listed before ``django.contrib.auth`` in INSTALLED_APPS so
that this command is the one ``manage.py`` runs.
"""

import os
from typing import Any

from django.conf import settings
from django.contrib.auth.management.commands import createsuperuser
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import IntegrityError

from arcana.core.exceptions import InvalidInput
from users.models import User, normalize_email, validate_normalized_email
from users.services import password_check

PASSWORD_ENV = "DJANGO_SUPERUSER_PASSWORD"  # noqa: S105 - a variable name


class Command(createsuperuser.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        deployment = settings.ARCANA_DEPLOYMENT
        if not deployment.holds_database:
            raise CommandError(
                f"createsuperuser runs where the users' data lives: the repository tier, "
                f"not the {deployment.tier} tier (make superuser MODE=layered)."
            )
        if not deployment.owns("users"):
            raise CommandError(
                f"createsuperuser runs where the users' data lives: the users service, "
                f"not the {deployment.service} service (make superuser MODE=microservices)."
            )
        field = User.USERNAME_FIELD
        if not options["interactive"]:
            email = options[field] or os.environ.get(f"DJANGO_SUPERUSER_{field.upper()}")
            if email:
                options[field] = normalize_email(email)
            if PASSWORD_ENV in os.environ:
                self._check_password(os.environ[PASSWORD_ENV], options)
        elif options[field]:
            options[field] = normalize_email(options[field])
        try:
            super().handle(*args, **options)
        except IntegrityError as exc:
            # Another process took the address between the check and the insert.
            if "email" not in str(exc).lower():
                raise
            raise CommandError("Error: That email is already taken.") from None

    def _check_password(self, password: str, options: dict[str, Any]) -> None:
        """The API's password policy, similarity to the name and email included."""
        name = options.get("name") or os.environ.get("DJANGO_SUPERUSER_NAME") or ""
        email = options[User.USERNAME_FIELD] or ""
        try:
            password_check(password=password, name=name, email=email)
        except InvalidInput as exc:
            messages = exc.errors.get("password", [])
            raise CommandError(f"{PASSWORD_ENV}: " + " ".join(messages)) from None

    def _validate_username(
        self, username: str, verbose_field_name: str, database: str
    ) -> str | None:
        username = normalize_email(username) if username else username
        # Private in Django (no stub), but the one check both modes share.
        error: str | None = super()._validate_username(  # type: ignore[misc]
            username, verbose_field_name, database
        )
        if error is None and username:
            try:
                validate_normalized_email(username)
            except ValidationError as exc:
                return "Error: " + "; ".join(exc.messages)
        return error

    def get_input_data(self, field: Any, message: str, default: str | None = None) -> Any:
        if field is not self.username_field:
            return super().get_input_data(field, message, default)
        raw_value = input(message)
        if default and raw_value == "":
            raw_value = default
        # Validators see the address as it will be stored, as in the API.
        value = normalize_email(raw_value)
        try:
            field.clean(value, None)
            validate_normalized_email(value)
        except ValidationError as exc:
            self.stderr.write("Error: " + "; ".join(exc.messages))
            return None
        return value
