"""A bounded mixed load at saturation with nothing lost (``bench/mixed.py``;
``make soak`` runs the same for five minutes)."""

import pytest

from bench.mixed import OPERATIONS, PROTOCOLS, soak
from tests.support.stack import LiveStack

pytestmark = pytest.mark.live


def test_mixed_load_loses_nothing_and_does_not_grow(stack: LiveStack) -> None:
    report = soak(stack, seconds=20, warmup=5, processes=3, threads=4, seed_count=8)
    print("\n" + report.render())

    assert sum(report.tally.errors.values()) + sum(report.warmup_tally.errors.values()) == 0
    assert all(report.tally.ok[f"{op}/{proto}"] for op in OPERATIONS for proto in PROTOCOLS)
    assert report.acknowledged > 0
    assert report.unreadable == []
    assert report.readable_rest == report.readable_grpc == report.acknowledged
    assert report.rows_found == report.seeded_rows + report.acknowledged
    for server in report.rss:
        assert report.growth(server) < 0.10, f"{server} RSS grew {report.growth(server):.1%}"
    assert report.problems() == []
