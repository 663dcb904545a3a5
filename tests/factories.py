"""factory_boy factories. Users get a real (test-cost) Argon2 hash and roles.

UserFactory.create()                       a plain user with role "user"
UserFactory.create(admin=True)             roles "user" and "admin"
UserFactory.create(password="...")         a chosen password
"""

from typing import Any

from factory.declarations import Sequence
from factory.django import DjangoModelFactory
from factory.faker import Faker

from users.models import Role, Roles, User

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User

    name = Faker("name")
    email = Sequence(lambda n: f"user{n}@example.com")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        password = kwargs.pop("password", DEFAULT_PASSWORD)
        admin = kwargs.pop("admin", False)
        roles = kwargs.pop("roles", [Roles.USER, Roles.ADMIN] if admin else [Roles.USER])
        user = model_class(**kwargs)
        user.set_password(password)
        user.save()
        user.roles.set(Role.objects.filter(name__in=roles))
        return user
