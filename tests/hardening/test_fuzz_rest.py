"""Schema-driven fuzzing of the REST API with schemathesis, in process.

The API's own OpenAPI schema (``/api/schema``) drives the generation; every
request goes through Django's WSGI handler (no server, no socket), the way a
real request would, middleware included. Each run (anonymous, a plain user, an
admin) sends both schema-conforming and deliberately invalid requests to every
operation and checks that:

- no response is a 5xx;
- every response conforms to the schema: a documented status code, the
  documented content type, and a body that matches the documented schema
  (error bodies included, which is what keeps ``arcana/openapi.py`` honest).

Hypothesis is derandomized and keeps no example database, so CI sees the same
requests on every run.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import tokens_for
from tests.factories import UserFactory
from tests.hardening.conftest import FUZZ_SETTINGS
from users.models import User

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Generated cases per operation and run; small operations (no parameters)
# exhaust their space sooner, which is why each run also asserts a floor.
EXAMPLES_PER_OPERATION = 14
MIN_REQUESTS_PER_RUN = 170  # x 3 runs >= 500

WSGI_APP = WSGIHandler()


@pytest.fixture(autouse=True)
def _keep_test_connection() -> Iterator[None]:
    """Requests run inside the test's transaction, as Django's test client does.

    Django closes "old" connections at each request's start and end, and a
    connection inside a test transaction always looks old (autocommit off), so
    the test transaction would die with the first request.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db: Any) -> Any:
    """The schema as the running app serves it, bound to the WSGI app."""
    return schemathesis.openapi.from_wsgi("/api/schema", WSGI_APP)


@dataclass
class FuzzRun:
    """One run: the headers every request carries, and what came back."""

    headers: dict[str, str]
    path_ids: list[str]
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def send(self, case: Any) -> None:
        response = case.call_and_validate(headers=self.headers, checks=CHECKS)
        self.requests += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1


def _strategy(operation: Any, path_ids: list[str]) -> Any:
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if any(parameter.location == "path" for parameter in operation.path_parameters):
        # Random ids only ever miss; real ones reach the code behind the 404.
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters={"id": user_id})
            for mode in modes
            for user_id in path_ids
        ]
    return st.one_of(strategies)


def _fuzz(api_schema: Any, run: FuzzRun) -> None:
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(FUZZ_SETTINGS, max_examples=EXAMPLES_PER_OPERATION)
        @given(case=_strategy(operation, run.path_ids))
        def fuzz_operation(case: Any) -> None:
            run.send(case)

        fuzz_operation()


def _make_users() -> tuple[User, User, User]:
    plain = UserFactory.create(name="Fuzz User", email="fuzz-user@example.com")
    admin = UserFactory.create(name="Fuzz Admin", email="fuzz-admin@example.com", admin=True)
    victim = UserFactory.create(name="Fuzz Victim", email="fuzz-victim@example.com")
    return plain, admin, victim


def _bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens_for(user).access}"}


RUNS: dict[str, Callable[[User, User, User], tuple[dict[str, str], list[str]]]] = {
    "anonymous": lambda plain, admin, victim: ({}, [str(victim.pk)]),
    "user": lambda plain, admin, victim: (_bearer(plain), [str(plain.pk), str(victim.pk)]),
    "admin": lambda plain, admin, victim: (_bearer(admin), [str(victim.pk), str(plain.pk)]),
}


@pytest.mark.parametrize("who", list(RUNS))
def test_fuzz_rest(api_schema: Any, who: str) -> None:
    headers, path_ids = RUNS[who](*_make_users())
    run = FuzzRun(headers=headers, path_ids=path_ids)
    _fuzz(api_schema, run)
    print(f"\nREST fuzz [{who}]: {run.requests} requests, statuses {sorted(run.statuses.items())}")
    assert run.requests >= MIN_REQUESTS_PER_RUN
    assert not any(status >= 500 for status in run.statuses)
