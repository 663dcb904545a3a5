from django.apps import AppConfig


class AuthnConfig(AppConfig):
    name = "authn"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI description of the bearer scheme, and the
        # receivers of other apps' signals.
        import authn
        from authn import receivers, schema  # noqa: F401

        authn.bind()  # authn.service and authn.repo, chosen once
