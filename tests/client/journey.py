"""A short program against the client openapi-python-client generates from the
schema (package ``arcana_cloud_api_client``): what a user of the generated
client writes. tests/test_generated_client.py type-checks it with mypy --strict
and runs it against a live server."""

from arcana_cloud_api_client import AuthenticatedClient, Client
from arcana_cloud_api_client.api.auth import (
    auth_login_create,
    auth_me_retrieve,
    auth_register_create,
)
from arcana_cloud_api_client.api.users import users_list
from arcana_cloud_api_client.models import (
    LoginInput,
    RegisterInput,
    TokenPairOutput,
    UserOutput,
    UserPageOutput,
)


def login(base_url: str, email: str, password: str) -> AuthenticatedClient:
    pair = auth_login_create.sync(
        client=Client(base_url=base_url), body=LoginInput(email=email, password=password)
    )
    if not isinstance(pair, TokenPairOutput):
        raise RuntimeError(f"login failed: {pair!r}")
    return AuthenticatedClient(base_url=base_url, token=pair.access)


def journey(base_url: str, *, name: str, email: str, password: str, admin: tuple[str, str]) -> int:
    """register -> login -> me -> list (as the admin); returns how many users
    the admin's search found."""
    anonymous = Client(base_url=base_url)
    registered = auth_register_create.sync(
        client=anonymous, body=RegisterInput(name=name, email=email, password=password)
    )
    if not isinstance(registered, TokenPairOutput):
        raise RuntimeError(f"register failed: {registered!r}")
    me = auth_me_retrieve.sync(client=login(base_url, email, password))
    if not isinstance(me, UserOutput) or me.email != email:
        raise RuntimeError(f"me failed: {me!r}")
    page = users_list.sync(client=login(base_url, *admin), search=email, size=5)
    # By offset (no cursor), so the page carries a total (absent by cursor).
    if not isinstance(page, UserPageOutput) or not isinstance(page.total, int):
        raise RuntimeError(f"list failed: {page!r}")
    return page.total
