"""tests/grpc/test_parity.py again, every test with ``users.repo`` and
``authn.repo`` pointed at a real internal server (the ``across`` fixture):
the public REST and gRPC answers are the same whether the repositories are
local or one hop away. (The database is still reachable in this process:
the point is what crosses the hop, not where the rows live.)"""

from collections.abc import Iterator

import pytest

from tests.grpc.test_parity import *  # noqa: F403 - the same tests, collected again here
from tests.internal.conftest import Hop, live_db

pytestmark = live_db


@pytest.fixture(autouse=True)
def _through_the_hop(across: Hop) -> Iterator[None]:
    yield
    # Guards the guard: the repositories really were answered across the hop.
    assert across.servicer.calls, "no repository call crossed the hop"
