"""Shared fixtures: users, tokens and authenticated API clients."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from authn.services import TokenPair, token_pair_issue
from tests.factories import DEFAULT_PASSWORD, UserFactory
from users import repository
from users.models import User


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    """Each test starts with an empty cache (throttle counters, cached users)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password() -> str:
    return DEFAULT_PASSWORD


@pytest.fixture
def user(db: Any) -> User:
    return UserFactory.create(name="Ursula User", email="ursula@example.com")


@pytest.fixture
def other_user(db: Any) -> User:
    return UserFactory.create(name="Oscar Other", email="oscar@example.com")


@pytest.fixture
def admin_user(db: Any) -> User:
    return UserFactory.create(name="Ada Admin", email="ada@example.com", admin=True)


def decode_access(token: str) -> AccessToken:
    return AccessToken(token)  # type: ignore[arg-type]  # simplejwt accepts str


def tokens_for(user: User) -> TokenPair:
    return token_pair_issue(user=repository.user_get(user_id=str(user.pk)))


def client_for(user: User | None = None, token: str | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = tokens_for(user).access
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user_client(user: User) -> APIClient:
    return client_for(user)


@pytest.fixture
def admin_client(admin_user: User) -> APIClient:
    return client_for(admin_user)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a test that did not run: fail the session."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
