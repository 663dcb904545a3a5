"""Shared fixtures: users, tokens and authenticated API clients."""

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from authn.services import TokenPair, token_pair_issue
from tests.cache_spy import CountingCache, spy_on_repository_cache
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.layered import (  # noqa: F401 - fixtures
    deployment_mode,
    layered,
    microservices,
    service_servers,
    tier_servers,
)
from tests.routing import routed_as  # noqa: F401 - a fixture
from tests.secret_scan import SecretScanner
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


def forged_token(user: User) -> str:
    """The user's access token with admin roles, signed with the wrong key."""
    claims = dict(decode_access(tokens_for(user).access).payload)
    claims["roles"] = ["admin", "user"]
    return jwt.encode(claims, "a different key of decent length 1234567", algorithm="HS256")


def expired_token(user: User) -> str:
    access = decode_access(tokens_for(user).access)
    access.set_exp(lifetime=-timedelta(seconds=1))
    return str(access)


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
def operator(db: object) -> Client:
    """A superuser signed in to the Django admin."""
    admin = User.objects.create_superuser(email="op@example.com", name="Operator", password="x")
    client = Client()
    client.force_login(admin)
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


FIGURES = pytest.StashKey[dict[str, str]]()


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> dict[str, str]:
    """Measurements the tests record (latencies, times to recover), printed in
    the terminal summary: figures, not pass/fail criteria."""
    return request.config.stash.setdefault(FIGURES, {})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorded = config.stash.get(FIGURES, {})
    if recorded:
        terminalreporter.section("figures")
        for name, figure in recorded.items():
            terminalreporter.write_line(f"{name}: {figure}")


SECRET_SCANNER = SecretScanner()


def pytest_configure(config: pytest.Config) -> None:
    SECRET_SCANNER.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (a skip would fail the session) the ``mysql`` tests unless the
    test database is MySQL/MariaDB: CI's second pass runs them."""
    if os.environ.get("DATABASE_URL", "").startswith("mysql"):
        return
    mine = [item for item in items if item.get_closest_marker("mysql")]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a test was skipped (it did not run) or if any log
    line of the whole run carried a password, a password hash or a token.

    Under pytest-xdist (``make test`` runs ``-n auto``) the tests and their
    logs are in the workers: each hands its leaks and figures to the
    controller (``pytest_testnodedown``), which decides and reports."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["secret_leaks"] = list(SECRET_SCANNER.leaks)
        recorded: dict[str, str] = session.config.stash.get(FIGURES, {})
        workeroutput["figures"] = dict(recorded)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if SECRET_SCANNER.leaks:
        print("\nSecrets reached the logs:\n  " + "\n  ".join(sorted(set(SECRET_SCANNER.leaks))))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, in the controller: a worker finished; keep what it found."""
    output = getattr(node, "workeroutput", {})
    SECRET_SCANNER.leaks.extend(output.get("secret_leaks", []))
    node.config.stash.setdefault(FIGURES, {}).update(output.get("figures", {}))


@pytest.fixture
def warm_users(
    admin_user: User, other_user: User, monkeypatch: pytest.MonkeyPatch
) -> CountingCache:
    """Both users cached, as in steady state; then the repository's cache calls counted."""
    cache.clear()
    for someone in (admin_user, other_user):
        repository.user_get(user_id=str(someone.pk))
    return spy_on_repository_cache(monkeypatch)
