"""The side-by-side benchmarks' arguments and tables (bench/sidebyside.py, used
by bench/wsgi.py and bench/aio.py); the runs themselves are benchmarks, not tests."""

import argparse

import pytest

from bench import aio, floor_grpc, sidebyside, wsgi


def test_concurrency_levels_parse_and_refuse_nonsense() -> None:
    assert sidebyside.concurrency("1,8") == [1, 8]
    for bad in ("", "0", "x", "1,-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            sidebyside.concurrency(bad)


def test_the_table_has_a_row_per_level_and_a_ratio_against_the_first() -> None:
    found = {}
    for name, rps in zip(floor_grpc.SERVERS, (1000.0, 800.0, 200.0), strict=True):
        found[f"{name}_rps"] = rps
        found[f"{name}_mean_ms"] = 1000 / rps
        found[f"{name}_ratio"] = rps / 1000
    rows = sidebyside.table({"1": found, "8": found}, floor_grpc.SERVERS).splitlines()
    assert len({row.count("|") for row in rows}) == 1, rows  # header, rule and rows line up
    assert rows[0].endswith("| aio-pool/sync | aio-inline/sync |"), rows[0]
    assert rows[2:] == [
        "| 1 | 1000 | 1.00 | 800 | 1.25 | 200 | 5.00 | 0.80x | 0.20x |",
        "| 8 | 1000 | 1.00 | 800 | 1.25 | 200 | 5.00 | 0.80x | 0.20x |",
    ]


def test_rounds_alternate_and_the_ratio_is_the_median_of_the_rounds() -> None:
    calls: list[str] = []
    # After a warm-up, "b" is twice "a" in two rounds and equal in one: median 2.
    speeds = {"a": [1.0, 100.0, 100.0, 100.0], "b": [1.0, 200.0, 200.0, 100.0]}

    def measure(name: str, clients: int, seconds: float) -> dict[str, float]:
        calls.append(name)
        return {"rps": speeds[name].pop(0), "mean_ms": 1.0}

    levels = sidebyside.interleaved(("a", "b"), [8], 3, 2.0, measure)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert levels["8"]["b_ratio"] == 2.0
    assert levels["8"]["a_ratio"] == 1.0


@pytest.mark.parametrize("module", [wsgi, aio])
@pytest.mark.parametrize(
    "bad", [["--rounds", "0"], ["--seconds", "-1"], ["--workers", "0"], ["--concurrency", "x"]]
)
def test_nonsense_options_are_refused(module: object, bad: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        module.main(bad)  # type: ignore[attr-defined]
    assert stopped.value.code == 2
