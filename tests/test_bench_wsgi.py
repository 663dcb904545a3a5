"""bench/wsgi.py's arguments and table (the run itself is a benchmark, not a test)."""

import argparse

import pytest

from bench import wsgi


def test_concurrency_levels_parse_and_refuse_nonsense() -> None:
    assert wsgi._concurrency("1,8") == [1, 8]
    for bad in ("", "0", "x", "1,-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            wsgi._concurrency(bad)


def test_the_table_has_a_row_per_level_with_the_median_ratio() -> None:
    found = {
        "gunicorn_rps": 500.0,
        "gunicorn_mean_ms": 2.0,
        "granian_rps": 650.0,
        "granian_mean_ms": 1.5,
        "ratio_median": 1.3,
    }
    text = wsgi.table({"levels": {"1": found, "8": {**found, "ratio_median": 1.62}}})
    rows = text.splitlines()[2:]
    assert rows == [
        "| 1 | 500 | 2.00 | 650 | 1.50 | 1.30x |",
        "| 8 | 500 | 2.00 | 650 | 1.50 | 1.62x |",
    ]
