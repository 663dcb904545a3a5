from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import users
        from users import signals

        signals.connect_receivers()
        users.bind()  # users.service and users.repo, chosen once
