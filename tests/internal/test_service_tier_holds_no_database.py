"""The services reach their data only through the repositories: with
``users.repo`` and ``authn.repo`` across a real internal server, the thread
running the services may not send one query of its own.

Layered mode's service tier has no database (arcana/db/refuse); a query there
is a 500 in production that in-process tests do not see, since the test
process holds the database. Here the services' own thread refuses every query
(Django's connections are per thread: the hop server's threads keep theirs).
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from authn import services as auth
from authn.errors import TokenInvalid
from tests.internal.conftest import Hop, live_db
from users import services
from users.records import Actor

pytestmark = live_db

STRONG = "a long and unusual passphrase 42"
NEWER = "another unusual passphrase 4242"


@pytest.fixture
def no_queries_here(across: Hop) -> Iterator[list[str]]:
    """Fails any query sent from this thread; yields the refused SQL."""
    refused: list[str] = []

    def refuse(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        refused.append(sql)
        raise AssertionError(f"the service tier queried the database: {sql}")

    with connection.execute_wrapper(refuse):
        yield refused
    assert not refused


def test_the_auth_flow_runs_on_the_repositories_alone(
    no_queries_here: list[str], across: Hop
) -> None:
    pair = auth.auth_register(name="Nadia", email="nadia@example.com", password=STRONG)
    actor = Actor(id=pair.user.id, roles=pair.user.roles, is_superuser=False)
    caller = auth.access_token_authenticate(token=pair.access)
    assert caller.user.id == pair.user.id

    rotated = auth.auth_refresh(refresh=pair.refresh)
    with pytest.raises(TokenInvalid):  # reuse of the rotated token ends the family
        auth.auth_refresh(refresh=pair.refresh)
    with pytest.raises(TokenInvalid):
        auth.auth_refresh(refresh=rotated.refresh)

    mine = auth.auth_login(email="nadia@example.com", password=STRONG, client="10.0.0.1")
    other = auth.auth_login(email="nadia@example.com", password=STRONG, client="10.0.0.1")
    auth.auth_logout(actor=actor, refresh=other.refresh)
    with pytest.raises(TokenInvalid):
        auth.auth_refresh(refresh=other.refresh)

    session = auth.access_token_authenticate(token=mine.access).session_id
    auth.password_change(
        actor=actor,
        client="10.0.0.1",
        current_password=STRONG,
        new_password=NEWER,
        session_id=session,
    )
    assert auth.auth_refresh(refresh=mine.refresh).user.id == pair.user.id
    renamed = services.user_update(actor=actor, user_id=actor.id, client="10.0.0.1", name="N")
    assert renamed.name == "N"
    assert {"refresh_token_revoked", "refresh_token_rotate"} <= set(across.methods())
