"""An unknown email and a wrong password are indistinguishable to a caller:
same status, same body, and the same median time (within 20%).

Both paths must spend one password hash: the wrong password verifies the
stored hash, the unknown email hashes the attempt anyway. The hasher here is
Argon2 at a cost where hashing dominates a request (~20 ms), as it does in
production, and the two kinds of attempt are interleaved so machine noise
lands on both alike.
"""

import time

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.hardening.timing import median_ratio

TRIES = 30


class TimingArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 16 * 1024
    parallelism = 1


@pytest.mark.django_db
@override_settings(
    PASSWORD_HASHERS=["tests.hardening.test_login_timing.TimingArgon2PasswordHasher"],
    LOGIN_LOCKOUT_FAILURES=10_000,
    LOGIN_LOCKOUT_ACCOUNT_FAILURES=10_000,
)
def test_unknown_email_and_wrong_password_are_indistinguishable() -> None:
    UserFactory.create(email="known@example.com", password="the real passphrase 99")
    client = APIClient()

    def attempt(email: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        response = client.post(
            "/api/v1/auth/login", {"email": email, "password": "not it at all 123"}, format="json"
        )
        return time.perf_counter() - started, response.status_code, response.content

    attempt("known@example.com")  # warm-up: imports, first hash
    attempt("nobody@example.com")
    wrong, unknown = [], []
    for _ in range(TRIES):
        wrong.append(attempt("known@example.com"))
        unknown.append(attempt("nobody@example.com"))

    assert {status for _, status, _ in wrong + unknown} == {401}
    assert {body for _, _, body in wrong + unknown} == {wrong[0][2]}
    ratio = median_ratio(
        "login",
        ("wrong password", "unknown email"),
        [seconds for seconds, _, _ in wrong],
        [seconds for seconds, _, _ in unknown],
    )
    assert 0.8 <= ratio <= 1.2
