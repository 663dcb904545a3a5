"""tests/users/test_api.py (the REST users API) again, with ``users.repo``
and ``authn.repo`` answered across a real internal server (see
test_parity_across_the_hop.py)."""

from collections.abc import Iterator

import pytest

from tests.internal.conftest import Hop, live_db
from tests.users.test_api import *  # noqa: F403 - the same tests, collected again here

pytestmark = live_db

# Refused before any data is read (no credentials), or no request at all.
TOUCH_NO_DATA = frozenset(
    {
        "test_retrieve_needs_authentication",
        "test_update_needs_authentication",
        "test_fast_renderer_matches_the_documented_serializer",
    }
)


@pytest.fixture(autouse=True)
def _through_the_hop(across: Hop, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    # Guards the guard: the repositories really were answered across the hop.
    crossed = bool(across.servicer.calls)
    assert crossed is (request.node.originalname not in TOUCH_NO_DATA), across.servicer.calls
