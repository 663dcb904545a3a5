"""bench/lists.py: refuses a database it cannot mean anything on, and prints
its table and ratios from the rows it measured."""

import pytest
from django.db import connections

from bench import lists


def test_it_needs_mariadb_or_mysql(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the suite's own database: the refusal is for any other vendor.
    monkeypatch.setattr(connections["default"], "vendor", "sqlite")
    with pytest.raises(SystemExit) as exited:
        lists.main(["--levels", "repository"])
    assert exited.value.code == 2
    assert "MariaDB/MySQL" in capsys.readouterr().err


def test_the_table_and_the_cursor_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    rows = []
    for label, _ in lists.FILTERS:
        for position, offset, cursor in (("page 0", 10.0, 4.0), ("last", 9000.0, 6.0)):
            rows.append({"filter": label, "position": position, "how": "offset", "rest": offset})
            rows.append({"filter": label, "position": position, "how": "cursor", "rest": cursor})
    rows[2]["rest"] = None  # a level skipped for the deepest offset
    lists.TARGETS[:] = [("rest", "none", 10.0, 15.0), ("grpc", "none", 10.0, 25.0)]
    try:
        lists._print(rows, ["rest"])
    finally:
        lists.TARGETS.clear()
    out = capsys.readouterr().out
    assert "| none | page 0 | offset | 10.0 |" in out
    assert "| none | last | offset | — |" in out
    assert "last page by cursor: 0.60x page 0 by offset, 1.50x page 0 by cursor" in out
    assert "15.0 ms: 1.50x (meets)" in out
    assert "25.0 ms: 2.50x (MISSES)" in out
