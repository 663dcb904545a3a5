"""tests/authn/test_api.py (the REST auth API) again, with ``users.repo``
and ``authn.repo`` answered across a real internal server (see
test_parity_across_the_hop.py)."""

from collections.abc import Iterator

import pytest

from tests.authn.test_api import *  # noqa: F403 - the same tests, collected again here
from tests.internal.conftest import Hop, live_db

pytestmark = live_db

# Many of these tests are refused by validation or authentication before any
# data is read; the guard counts the ones that crossed, over the module.
crossed: list[str] = []


@pytest.fixture(autouse=True, scope="module")
def _most_went_through_the_hop() -> Iterator[None]:
    yield
    assert len(crossed) >= 25, crossed  # 29 of the 45 when this was written


@pytest.fixture(autouse=True)
def _through_the_hop(across: Hop, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if across.servicer.calls:
        crossed.append(request.node.name)
