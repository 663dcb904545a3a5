"""A password reset for an address nobody has looks like one for an account:
same status, same body, the same median time (within 20%), and the same work
behind it: one queued task either way (the worker finds out who has it).
Measured with the production queue (the database backend), interleaved in
alternating order so machine noise lands on both alike."""

import time
from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.hardening.timing import median_ratio

TRIES = 150


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_known_and_unknown_addresses_are_indistinguishable(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.THROTTLE_RATES = {}  # measured, not limited
    UserFactory.create(email="known@example.com")
    client = APIClient()

    def attempt(email: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        response = client.post("/api/v1/auth/password-reset", {"email": email}, format="json")
        return time.perf_counter() - started, response.status_code, response.content

    attempt("known@example.com")  # warm-up
    attempt("nobody@example.com")
    known, unknown = [], []
    for index in range(TRIES):
        # Alternating which goes first: neither is always the one after a pause.
        if index % 2:
            known.append(attempt("known@example.com"))
            unknown.append(attempt("nobody@example.com"))
        else:
            unknown.append(attempt("nobody@example.com"))
            known.append(attempt("known@example.com"))

    assert {status for _, status, _ in known + unknown} == {202}
    assert {body for _, _, body in known + unknown} == {known[0][2]}
    assert DBTaskResult.objects.count() == 2 * (TRIES + 1)  # one task per request, whoever
    ratio = median_ratio(
        "password-reset",
        ("known", "unknown"),
        [seconds for seconds, _, _ in known],
        [seconds for seconds, _, _ in unknown],
    )
    assert 0.8 <= ratio <= 1.2
