"""factory_boy factories. Users get a real (test-cost) Argon2 hash and roles.

UserFactory.create()                       a plain user with role "user"
UserFactory.create(admin=True)             roles "user" and "admin"
UserFactory.create(roles=[...])            exactly these roles (names), possibly none
UserFactory.create(password="...")         a chosen password
UserFactory.build()                        unsaved, with the password hash; no roles
"""

from collections.abc import Sequence as SequenceOf
from typing import Any

from django.contrib.auth.hashers import make_password
from factory.declarations import Sequence, Trait
from factory.django import DjangoModelFactory
from factory.faker import Faker
from factory.helpers import post_generation

from users.models import Role, Roles, User

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        # Each hook saves what it changes; no blanket second save.
        skip_postgeneration_save = True

    class Params:
        # Hands the roles hook admin=True.
        admin = Trait(roles__admin=True)

    name = Faker("name")
    email = Sequence(lambda n: f"user{n}@example.com")

    @post_generation
    def password(obj: User, create: bool, extracted: str | None, **kwargs: Any) -> None:
        # The hash alone, not set_password: after the first save User.save would
        # take that for a password change and end the (no) sessions of a new user.
        obj.password = make_password(DEFAULT_PASSWORD if extracted is None else extracted)
        if create:
            obj.save(update_fields=["password"])

    @post_generation
    def roles(obj: User, create: bool, extracted: SequenceOf[str] | None, **kwargs: Any) -> None:
        if not create:
            return  # many-to-many needs a saved row
        if extracted is None:
            extracted = [Roles.USER, Roles.ADMIN] if kwargs.get("admin") else [Roles.USER]
        obj.roles.set(Role.objects.filter(name__in=extracted))
