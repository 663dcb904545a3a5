"""Real-browser tests: Debian's Chromium driven by Playwright (PyPI
``playwright``, never ``playwright install``), against a live server of the
test database. Deselected unless ``ARCANA_BROWSER_TESTS=1`` (CI's browser step
sets it after ``scripts/bootstrap.sh --browser`` installed Chromium); a
missing browser then fails the run, never skips it. A failing test leaves a
screenshot in ``ARCANA_SCREENSHOTS`` (default ``.run/screenshots/``)."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHROMIUM = os.environ.get("ARCANA_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("ARCANA_SCREENSHOTS", str(ROOT / ".run" / "screenshots")))
ENABLED = os.environ.get("ARCANA_BROWSER_TESTS") == "1"

# Playwright's sync API runs an event loop in this thread; the test's own ORM
# calls (set-up, checks) are plain synchronous code all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    for item in mine:
        item.add_marker(pytest.mark.browser)
    if ENABLED or not mine:
        return
    config.hook.pytest_deselected(items=mine)
    items[:] = [item for item in items if item not in mine]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: run scripts/bootstrap.sh --browser")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    if request.node.stash.get(FAILED, False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
