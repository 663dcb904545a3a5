"""A spy on the cache calls ``users.repository`` makes (how many round trips)."""

from typing import Any

import pytest
from django.core.cache import cache

from users import repository


class CountingCache:
    """The cache as the repository sees it, naming each call that goes to it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(cache, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return found(*args, **kwargs)

        return call


def spy_on_repository_cache(monkeypatch: pytest.MonkeyPatch) -> CountingCache:
    spy = CountingCache()
    monkeypatch.setattr(repository, "cache", spy)
    return spy
