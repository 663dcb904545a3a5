from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import users
        from arcana.core.grpc import read_ahead_declare
        from users import signals
        from users.grpc.servicers import READ_AHEAD, SERVICE

        signals.connect_receivers()
        users.bind()  # users.service and users.repo, chosen once
        # GetUser's target comes back in the round trip that reads the caller.
        read_ahead_declare(service=SERVICE, methods=READ_AHEAD)
