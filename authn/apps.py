from django.apps import AppConfig


class AuthnConfig(AppConfig):
    name = "authn"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI description of the bearer scheme, and the
        # receivers of other apps' signals.
        from authn import receivers, schema  # noqa: F401
