"""Waiting for a condition instead of sleeping a guessed time."""

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``condition`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout:.1f}s: {condition}")
        time.sleep(interval)
    return time.monotonic() - started
