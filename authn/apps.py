from django.apps import AppConfig


class AuthnConfig(AppConfig):
    name = "authn"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI description of the bearer scheme, and the
        # receivers of other apps' signals.
        import authn
        from arcana.core.grpc import public_methods_declare
        from authn import receivers, schema  # noqa: F401
        from authn.grpc.servicers import PUBLIC_METHODS, SERVICE

        authn.bind()  # authn.service and authn.repo, chosen once
        # Register, Login and Refresh need no token over gRPC either.
        public_methods_declare(service=SERVICE, throttle_scopes=PUBLIC_METHODS)
