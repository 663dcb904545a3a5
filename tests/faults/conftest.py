"""Live fault tests need MySQL/MariaDB and Redis: without them they are
deselected (never skipped; the session fails on skips)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import Stack, fault_stack

HERE = Path(__file__).resolve().parent


def _live_backends() -> bool:
    database_url = os.environ.get("DATABASE_URL", "")
    return database_url.startswith(("mysql://", "mysql2://", "mariadb://")) and bool(
        os.environ.get("REDIS_URL")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _live_backends():
        return
    # Only this directory's items: tests/live decides for its own.
    deselected = [
        item for item in items if item.get_closest_marker("live") and HERE in item.path.parents
    ]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("fault-logs")
    with fault_stack(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], logs) as live:
        yield live
